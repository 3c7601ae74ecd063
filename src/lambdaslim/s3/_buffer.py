"""Buffers that downloads write into, so that ``read()`` can hand the bytes out as they are.

A ``bytes`` object cannot be written through Python's buffer protocol, and turning any
writable buffer into ``bytes`` copies it. On CPython a fresh ``bytes(n)`` is one block of
memory that nothing else has seen yet (its hash is computed lazily, and only sizes 0 and 1
are shared singletons), so lambdaslim writes the download straight into it through a ctypes
view of its storage, before any other code gets the object. The result is an ordinary,
immutable ``bytes`` that ``S3Object.read()``, ``getvalue()`` and the memory cache share.

``bytes(n)`` comes from ``calloc``: big blocks are fresh anonymous pages that appear as they
are first written, in the threads that write them. Where the trick is unavailable (another
interpreter, or a layout check that fails) a ``bytearray`` / anonymous map is used instead
and ``read()`` then copies once.
"""

from __future__ import annotations

import mmap
import sys
import threading
from typing import Union

Buffer = Union[bytes, bytearray, mmap.mmap]

_MIN_INPLACE = 2  # bytes(0) and bytes(1) are shared singletons: never write into those
_checked: bool | None = None
_check_lock = threading.Lock()


def _view_of_bytes(data: bytes) -> memoryview:
    """A writable view of ``data``'s storage (CPython's ``PyBytesObject.ob_sval``)."""
    import ctypes

    offset = bytes.__basicsize__ - 1  # ob_sval is the last member; basicsize counts its NUL
    array = (ctypes.c_char * len(data)).from_address(id(data) + offset)
    return memoryview(array).cast("B")


def inplace_supported() -> bool:
    """Whether writing into a fresh ``bytes`` works here (checked once, on a probe object)."""
    global _checked
    if _checked is None:
        with _check_lock:
            if _checked is None:
                ok = sys.implementation.name == "cpython"
                if ok:
                    try:
                        probe = bytes(16)
                        view = _view_of_bytes(probe)
                        view[3:6] = b"abc"
                        view.release()
                        ok = probe == b"\0\0\0abc" + b"\0" * 10
                    except Exception:  # noqa: BLE001 - any failure means: do not use it
                        ok = False
                _checked = ok
    return _checked


def allocate(nbytes: int) -> tuple[Buffer, memoryview]:
    """A zeroed buffer of ``nbytes`` and a writable view of it.

    The buffer is a ``bytes`` object where :func:`inplace_supported`; the caller must not
    hand it to other code before it has finished writing through the view (and released it).
    """
    if nbytes >= _MIN_INPLACE and inplace_supported():
        data = bytes(nbytes)
        return data, _view_of_bytes(data)
    buffer: bytearray | mmap.mmap = mmap.mmap(-1, nbytes) if nbytes >= 1 << 20 else bytearray(nbytes)
    if nbytes == 0:
        return b"", memoryview(bytearray(0))
    return buffer, memoryview(buffer)


class Target:
    """Where a download's bytes go. Threads ask for a ``region`` to read a chunk into, then
    ``commit`` the bytes they got; regions of different threads never overlap."""

    def region(self, offset: int, nbytes: int) -> memoryview:
        raise NotImplementedError

    def commit(self, offset: int, chunk: memoryview) -> None:
        """The bytes read into the region at ``offset`` (nothing to do for memory)."""

    def finish(self) -> Buffer:
        """Every byte is written: release the views and return the result."""
        raise NotImplementedError

    def abort(self) -> None:
        """The download failed: release what the target holds."""


class MemoryTarget(Target):
    """The object's bytes in memory: chunks land in their final place, read() returns them as is."""

    def __init__(self, nbytes: int) -> None:
        self._data, self._view = allocate(nbytes)

    def region(self, offset: int, nbytes: int) -> memoryview:
        return self._view[offset : offset + nbytes]

    def finish(self) -> Buffer:
        self._view.release()
        return self._data

    def abort(self) -> None:
        self._view.release()


class FileTarget(Target):
    """The object's bytes in a file (already open for writing): each thread reads chunks into a
    buffer of its own and writes them at their offset with ``pwrite``. A full disk raises an
    ``OSError`` here, where a writable memory map of the file would kill the process (SIGBUS)."""

    def __init__(self, fd: int, chunk: int) -> None:
        self._fd = fd
        self._chunk = chunk
        self._local = threading.local()

    def region(self, offset: int, nbytes: int) -> memoryview:
        scratch: memoryview | None = getattr(self._local, "scratch", None)
        if scratch is None or len(scratch) < nbytes:
            scratch = self._local.scratch = memoryview(bytearray(max(nbytes, self._chunk)))
        return scratch[:nbytes]

    def commit(self, offset: int, chunk: memoryview) -> None:
        import os

        while len(chunk):
            written = os.pwrite(self._fd, chunk, offset)
            chunk, offset = chunk[written:], offset + written

    def finish(self) -> Buffer:
        return b""
