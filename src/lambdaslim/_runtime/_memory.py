"""Python code of packed distributions served from memory (``LAMBDASLIM_PYTHON=memory``).

A unit's ``.py``/``.pyc`` files sit in code parts of at most 2 MiB (see docs/format.md).
Loading a module decompresses the one part that holds it; decompressed parts stay in one
process-wide LRU cache bounded by ``LAMBDASLIM_CODE_CACHE`` (default 32 MiB), so the memory
held for code never exceeds that bound whatever is imported. A part evicted and needed
again (a traceback's source lines, a late import) is decompressed again from the layer.

:class:`UnitFiles` is the unit's file table as a tree, which the path hook
(:mod:`._pathhook`) answers ``find_spec`` and ``iter_modules`` from without touching disk.
"""

from __future__ import annotations

import _thread
import hashlib
import os
from collections import OrderedDict

from ._errors import ArchiveError
from ._format import CODE, LayerIndex, Unit

DEFAULT_CACHE_BYTES = 32 * 1024 * 1024

Segment = tuple[int, int, int]  # (part number, offset in the part, length)


def cache_limit() -> int:
    """The byte bound of the code cache (``LAMBDASLIM_CODE_CACHE``: ``32MB``, ``0`` = none kept)."""
    from . import _config

    limit = _config.size("LAMBDASLIM_CODE_CACHE")
    return DEFAULT_CACHE_BYTES if limit is None else limit


class CodeCache:
    """Decompressed code parts, least recently used evicted first, at most ``limit`` bytes."""

    def __init__(self, limit: int | None = None) -> None:
        self._limit = limit  # None: read LAMBDASLIM_CODE_CACHE on first use
        self._parts: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._held: dict[str, int] = {}
        self._lock = _thread.allocate_lock()

    @property
    def limit(self) -> int:
        if self._limit is None:
            self._limit = cache_limit()
        return self._limit

    def get(self, key: tuple[str, int]) -> bytes | None:
        with self._lock:
            data = self._parts.get(key)
            if data is not None:
                self._parts.move_to_end(key)
            return data

    def put(self, key: tuple[str, int], data: bytes) -> None:
        with self._lock:
            if key in self._parts or len(data) > self.limit:
                return
            self._parts[key] = data
            self._held[key[0]] = self._held.get(key[0], 0) + len(data)
            total = sum(self._held.values())
            while total > self.limit:
                (unit, _), old = self._parts.popitem(last=False)
                self._held[unit] -= len(old)
                total -= len(old)

    def held(self, unit_key: str) -> int:
        """Bytes of ``unit_key``'s code held right now."""
        return self._held.get(unit_key, 0)

    def clear(self) -> None:
        with self._lock:
            self._parts.clear()
            self._held.clear()


CACHE = CodeCache()


class UnitFiles:
    """One unit's file table as folders and files, and its code files' place in the parts."""

    def __init__(self, index: LayerIndex, unit: Unit) -> None:
        self.index, self.unit = index, unit
        self.sizes: dict[str, int] = {}
        self.children: dict[str, set[str]] = {"": set()}  # folder -> names of files and folders in it
        for f in unit.files:
            self.sizes[f.path] = f.size
            parent, _, name = f.path.rpartition("/")
            while True:
                kids = self.children.get(parent)
                if kids is None:
                    self.children[parent] = {name}
                else:
                    new = name not in kids
                    kids.add(name)
                    if not new:
                        break
                if not parent:
                    break
                parent, _, name = parent.rpartition("/")
        self.code: dict[str, list[Segment]] = {}
        for number, part in enumerate(unit.parts):
            if part.kind != CODE:
                continue
            if part.offset is not None:
                self.code.setdefault(unit.files[part.first].path, []).append((number, 0, part.unpacked_bytes))
                continue
            pos = 0
            for f in unit.files[part.first : part.first + part.count]:
                self.code[f.path] = [(number, pos, f.size)]
                pos += f.size

    def is_dir(self, rel: str) -> bool:
        return rel in self.children

    def has(self, rel: str) -> bool:
        return rel in self.sizes

    def read(self, rel: str) -> bytes:
        """The bytes of code file ``rel``, from the cache or decompressed from its part."""
        segments = self.code.get(rel)
        if segments is None:
            raise FileNotFoundError(rel)
        pieces = [self._part(number)[start : start + length] for number, start, length in segments]
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def held(self) -> int:
        return CACHE.held(self.unit.key)

    def _part(self, number: int) -> bytes:
        key = (self.unit.key, number)
        cached = CACHE.get(key)
        if cached is not None:
            return cached
        part = self.unit.parts[number]
        path = os.path.join(self.index.folder, part.path)
        try:
            with open(path, "rb") as fh:
                packed = fh.read()
        except OSError as exc:
            raise ArchiveError(f"cannot read part of {self.unit.name}: {exc.strerror}", path) from None
        if len(packed) != part.packed_bytes or hashlib.sha256(packed).hexdigest() != part.sha256:
            raise ArchiveError(f"part of {self.unit.name} does not match its sha256 (corrupt or replaced)", path)
        from ._deps import zstandard

        zstd = zstandard()
        try:
            data: bytes = zstd.ZstdDecompressor(max_window_size=1 << 27).decompress(
                packed, max_output_size=part.unpacked_bytes)
        except zstd.ZstdError as exc:
            raise ArchiveError(f"part of {self.unit.name} is corrupt: {exc}", path) from None
        if len(data) != part.unpacked_bytes:
            raise ArchiveError(f"part of {self.unit.name} holds {len(data)} bytes, its index says "
                               f"{part.unpacked_bytes}", path)
        CACHE.put(key, data)
        return data
