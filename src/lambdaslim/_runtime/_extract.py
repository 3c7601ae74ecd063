"""Decompress a unit's parts into a fresh folder: a direct file writer over the zstd stream.

Each part's sha256 is computed while its compressed bytes are read, so corruption is caught
without a second pass; the folder given must be new and private (a staging folder): it is
the caller's job to publish it atomically or delete it. Paths were validated with the index
(see :func:`lambdaslim._runtime._format.check_relpath`); files are created with ``O_EXCL|O_NOFOLLOW``
so nothing is followed or overwritten. Parts can be written by several threads at once.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
from concurrent.futures import Executor
from typing import BinaryIO

from ._errors import ArchiveError
from ._files import CREATE, write_all
from ._format import LayerIndex, Part, Unit

_READ = 1 << 20
# What `lambdaslim pack` writes (window_log 23): a frame asking for more is refused, so a
# hostile part cannot make each thread allocate 128 MiB (zstd's default ceiling).
MAX_WINDOW = 1 << 23
# A file cut into slice parts is opened by each of them: no O_EXCL (the index was checked
# for duplicate paths), still never through a symlink.
_SLICE_FLAGS = CREATE & ~os.O_EXCL


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


_UMASK = _umask()


class _HashingReader:
    """Feeds the decompressor and hashes the compressed bytes as they pass."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(_READ):
            pass


def extract_part(layer_folder: str, unit: Unit, part: Part, dest: str, made_dirs: set[str]) -> int:
    """Write the files of one part under ``dest``; returns bytes written."""
    from ._deps import zstandard

    zstd = zstandard()
    part_path = os.path.join(layer_folder, part.path)
    files = unit.files[part.first : part.first + part.count]
    try:
        raw = open(part_path, "rb")
    except OSError as exc:
        raise ArchiveError(f"cannot read part of {unit.name}: {exc.strerror}", part_path) from None
    written = 0
    with raw:
        reader = _HashingReader(raw)
        dctx = zstd.ZstdDecompressor(max_window_size=MAX_WINDOW)
        try:
            with dctx.stream_reader(reader, read_size=_READ, read_across_frames=False) as stream:  # type: ignore[arg-type]
                # One buffer per part, filled again and again: no fresh 1 MiB object (and no
                # fresh zeroed pages from the kernel) per chunk.
                buf = bytearray(_READ)
                view = memoryview(buf)
                pos = filled = 0
                for entry in files:
                    parent = entry.path.rpartition("/")[0]
                    if parent and parent not in made_dirs:
                        os.makedirs(os.path.join(dest, parent), exist_ok=True)
                        made_dirs.add(parent)
                    if part.offset is None:
                        fd = os.open(os.path.join(dest, entry.path), CREATE, entry.mode)
                        remaining = entry.size
                    else:
                        fd = os.open(os.path.join(dest, entry.path), _SLICE_FLAGS, entry.mode)
                        os.lseek(fd, part.offset, os.SEEK_SET)
                        remaining = part.unpacked_bytes
                    try:
                        while remaining:
                            if pos >= filled:
                                filled, pos = stream.readinto(buf), 0
                                if not filled:
                                    raise ArchiveError(
                                        f"part of {unit.name} is truncated (ends inside {entry.path})", part_path)
                            take = min(remaining, filled - pos)
                            write_all(fd, view[pos : pos + take], os.path.join(dest, entry.path))
                            pos += take
                            remaining -= take
                        if entry.mode & ~_UMASK != entry.mode:
                            os.fchmod(fd, entry.mode)
                    finally:
                        os.close(fd)
                    written += entry.size if part.offset is None else part.unpacked_bytes
                if pos < filled or stream.read(1):
                    raise ArchiveError(f"part of {unit.name} holds more bytes than its index says", part_path)
            reader.drain()
        except zstd.ZstdError as exc:
            raise ArchiveError(f"part of {unit.name} is corrupt: {exc}", part_path) from None
        except FileExistsError as exc:
            raise ArchiveError(f"part of {unit.name} writes {exc.filename} twice", part_path) from None
        except NotADirectoryError as exc:
            raise ArchiveError(f"part of {unit.name} has conflicting paths at {exc.filename}", part_path) from None
    if reader.hash.hexdigest() != part.sha256 or reader.count != part.packed_bytes:
        raise ArchiveError(f"part of {unit.name} does not match its sha256 (corrupt or replaced)", part_path)
    return written


def extract_unit(
    index: LayerIndex,
    unit: Unit,
    dest: str,
    *,
    workers: int = 1,
    pool: Executor | None = None,
    kinds: frozenset[str] | None = None,
) -> int:
    """Write every file of ``unit`` under the new folder ``dest``; returns bytes written.

    Parts run on ``pool`` when given (extract_all shares one), else on ``workers`` threads.
    With ``kinds``, only parts of those kinds are decompressed (memory mode: disk parts),
    and every folder of the tree but ``__pycache__`` and the dist-info is created, so that
    ``os.path.dirname(__file__)`` of a module served from memory exists.
    """
    # Import zstandard here, not first inside a worker: on Python <= 3.11 a meta path finder
    # runs under the global import lock, so a worker's first import would wait for it forever
    # while the importing thread waits for the worker. Workers must import nothing new.
    from ._deps import zstandard

    zstandard()

    parts = unit.parts  # validates the file table before anything is written
    os.makedirs(dest, exist_ok=True)
    made_dirs: set[str] = set()
    if kinds is not None:
        parts = [p for p in parts if p.kind in kinds]
        for entry in unit.files:
            parent = entry.path.rpartition("/")[0]
            if parent and parent not in made_dirs and "__pycache__" not in parent.split("/") \
                    and not (unit.dist_info and parent.split("/")[0] == unit.dist_info):
                os.makedirs(os.path.join(dest, parent), exist_ok=True)
                made_dirs.add(parent)
    if pool is None and (workers <= 1 or len(parts) <= 1):
        total = 0
        for part in parts:
            total += extract_part(index.folder, unit, part, dest, made_dirs)
        return total
    # Directories are created with exist_ok, so threads sharing ``made_dirs`` only skip work.
    own = None
    if pool is None:
        own = pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    try:
        # Biggest parts first: a long slice of one huge file must not start last.
        order = sorted(parts, key=lambda p: -p.unpacked_bytes)
        futures = [pool.submit(extract_part, index.folder, unit, p, dest, made_dirs) for p in order]
        total = 0
        try:
            for fut in futures:
                total += fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            concurrent.futures.wait(futures)  # nothing may still write once we return
            raise
        return total
    finally:
        if own is not None:
            own.shutdown(wait=True)
