"""The object :func:`lambdaslim.s3.stream_get` returns: bytes in memory, read like a file.

Its buffer is never written after the download, so every reader and the memory cache share
it: a warm read hands out a new view, not a copy.
"""

from __future__ import annotations

import io
from datetime import datetime

from ._buffer import Buffer


class S3Object(io.BufferedIOBase):
    """A read-only, seekable binary file over an S3 object's bytes held in memory.

    Works where a file opened with ``"rb"`` works (``numpy.load``, ``PIL.Image.open``,
    ``pickle.load``...). :meth:`getbuffer` gives a read-only ``memoryview`` without copying;
    :meth:`read` and :meth:`getvalue` return ``bytes``.
    """

    def __init__(
        self,
        data: Buffer,
        *,
        bucket: str,
        key: str,
        etag: str,
        object_size: int,
        version_id: str | None = None,
        content_type: str | None = None,
        last_modified: datetime | None = None,
        source: str = "network",
    ) -> None:
        super().__init__()
        self._data = data
        self._view = memoryview(data).toreadonly()
        self._pos = 0
        self.bucket = bucket
        self.key = key
        self.etag = etag
        self.object_size = object_size  # the whole object's size (more than len() for a range)
        self.version_id = version_id
        self.content_type = content_type
        self.last_modified = last_modified
        # "network" (downloaded now), "memory" / "tmp" (cache, no request), "revalidated" (304)
        self.source = source

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def __repr__(self) -> str:
        return f"<S3Object {self.url} {len(self._view)} bytes etag={self.etag} source={self.source}>"

    def __len__(self) -> int:
        return len(self._view)

    # -- io protocol ------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def read(self, size: int | None = -1) -> bytes:
        self._check()
        end = len(self._view)
        if size is not None and size >= 0:
            end = min(end, self._pos + size)
        start = self._pos
        if start >= end:
            return b""
        self._pos = end
        if start == 0 and end == len(self._view) and isinstance(self._data, bytes):
            return self._data
        return self._view[start:end].tobytes()

    def read1(self, size: int | None = -1) -> bytes:
        return self.read(size)

    def readinto(self, buffer: object) -> int:
        self._check()
        target = memoryview(buffer).cast("B")  # type: ignore[arg-type]
        n = max(0, min(len(target), len(self._view) - self._pos))
        target[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def readinto1(self, buffer: object) -> int:
        return self.readinto(buffer)

    def readline(self, size: int | None = -1) -> bytes:
        self._check()
        end = len(self._view)
        if size is not None and size >= 0:
            end = min(end, self._pos + size)
        found = self._data.find(b"\n", self._pos, end)
        stop = end if found < 0 else found + 1
        return self.read(stop - self._pos)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = len(self._view) + offset
        else:
            raise ValueError(f"invalid whence ({whence!r}, should be 0, 1 or 2)")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def tell(self) -> int:
        self._check()
        return self._pos

    def getbuffer(self) -> memoryview:
        """The bytes as a read-only ``memoryview`` (no copy)."""
        self._check()
        return self._view

    def getvalue(self) -> bytes:
        """All the bytes (a copy unless they are already a ``bytes`` object)."""
        self._check()
        if isinstance(self._data, bytes):
            return self._data
        return self._view.tobytes()
