"""The packed-layer index: what a layer holds, readable without decompressing anything.

A packed layer is a folder ``<layer root>/lambdaslim/<layer id>/`` holding ``index.json``,
``parts/*.zst`` (each part one zstd frame: the bytes of a run of files, concatenated, in
index order) and ``meta/<dist>.dist-info/`` (copies for importlib.metadata before extraction).
See docs/format.md. This module is imported at cold start: json, os and dataclasses only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ._errors import ArchiveError

FORMAT = "lambdaslim-layer"
FORMAT_VERSION = 1
INDEX_NAME = "index.json"
LAYER_DIR = "lambdaslim"  # inside a layer root such as /opt
BLOCK = 4096  # allocation unit used to estimate bytes on disk (ext4, tmpfs pages)


@dataclass(frozen=True)
class FileEntry:
    path: str  # POSIX, relative to the unit's tree
    size: int
    mode: int  # permission bits: 0o644 or 0o755


@dataclass(frozen=True)
class Part:
    path: str  # relative to the layer folder
    first: int  # index of its first file in Unit.files
    count: int
    unpacked_bytes: int
    packed_bytes: int
    sha256: str


@dataclass
class Unit:
    """One distribution (or the files no RECORD claims), compressed on its own."""

    key: str  # unique, filesystem-safe; names the extracted folder
    name: str
    version: str
    kind: str  # "dist" | "unclaimed"
    import_names: list[str]
    dist_info: str | None
    unpacked_bytes: int
    disk_bytes: int
    packed_bytes: int
    sha256: str  # identity of the unit's content (file table + part hashes)
    parts: list[Part]
    files: list[FileEntry] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "import_names": self.import_names,
            "dist_info": self.dist_info,
            "files_count": len(self.files),
            "unpacked_bytes": self.unpacked_bytes,
            "disk_bytes": self.disk_bytes,
            "packed_bytes": self.packed_bytes,
            "sha256": self.sha256,
            "parts": [p.__dict__ for p in self.parts],
            "files": [[f.path, f.size, f.mode] for f in self.files],
        }


@dataclass
class LayerIndex:
    layer_id: str
    created_by: str
    zstd_level: int
    part_bytes: int
    units: list[Unit]
    folder: str = ""  # where the index was read from (not serialised)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "layer_id": self.layer_id,
            "created_by": self.created_by,
            "zstd_level": self.zstd_level,
            "part_bytes": self.part_bytes,
            "units": [u.to_json() for u in self.units],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))


def disk_bytes(sizes: list[int], n_dirs: int) -> int:
    """Estimate of the space a tree takes on disk: whole blocks per file and folder."""
    return sum(-(-s // BLOCK) * BLOCK for s in sizes) + n_dirs * BLOCK


def check_relpath(path: str, where: str) -> None:
    """Refuse absolute paths, ``..``, empty or odd components: nothing may leave the root."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise ArchiveError(f"unsafe path {path!r} in archive", where)
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise ArchiveError(f"unsafe path {path!r} in archive", where)


def _int(value: Any, where: str, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ArchiveError(f"bad {what} {value!r} in index", where)
    return value


def _parse_unit(raw: dict[str, Any], where: str) -> Unit:
    files_raw = raw["files"]
    files: list[FileEntry] = []
    seen: set[str] = set()
    dirs: set[str] = set()
    for item in files_raw:
        path, size, mode = item
        if not isinstance(path, str):
            raise ArchiveError(f"bad file entry {item!r} in index", where)
        check_relpath(path, where)
        if path in seen or path in dirs:
            raise ArchiveError(f"path {path!r} appears twice in unit {raw['key']!r}", where)
        seen.add(path)
        parent = path.rpartition("/")[0]
        while parent and parent not in dirs:
            if parent in seen:
                raise ArchiveError(f"path {parent!r} is both a file and a folder", where)
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
        files.append(FileEntry(path, _int(size, where, "size"), 0o755 if _int(mode, where, "mode") & 0o111 else 0o644))
    parts: list[Part] = []
    expected_first = 0
    for p in raw["parts"]:
        part = Part(
            path=str(p["path"]),
            first=_int(p["first"], where, "part start"),
            count=_int(p["count"], where, "part length"),
            unpacked_bytes=_int(p["unpacked_bytes"], where, "part size"),
            packed_bytes=_int(p["packed_bytes"], where, "part size"),
            sha256=str(p["sha256"]),
        )
        check_relpath(part.path, where)
        if part.first != expected_first:
            raise ArchiveError(f"parts of unit {raw['key']!r} do not cover its files in order", where)
        if sum(f.size for f in files[part.first : part.first + part.count]) != part.unpacked_bytes:
            raise ArchiveError(f"part {part.path!r} size disagrees with its files", where)
        expected_first += part.count
        parts.append(part)
    if expected_first != len(files):
        raise ArchiveError(f"parts of unit {raw['key']!r} do not cover its files", where)
    key = str(raw["key"])
    check_relpath(key, where)
    if "/" in key or key.startswith("."):
        raise ArchiveError(f"bad unit key {key!r}", where)
    return Unit(
        key=key,
        name=str(raw["name"]),
        version=str(raw["version"]),
        kind=str(raw.get("kind", "dist")),
        import_names=[str(n) for n in raw["import_names"]],
        dist_info=raw.get("dist_info"),
        unpacked_bytes=_int(raw["unpacked_bytes"], where, "size"),
        disk_bytes=_int(raw["disk_bytes"], where, "size"),
        packed_bytes=_int(raw["packed_bytes"], where, "size"),
        sha256=str(raw["sha256"]),
        parts=parts,
        files=files,
    )


def loads(text: str | bytes, where: str = "index.json") -> LayerIndex:
    """Parse and validate an index; any defect raises :class:`ArchiveError` naming ``where``."""
    try:
        raw = json.loads(text)
        if raw.get("format") != FORMAT:
            raise ArchiveError("not a lambdaslim layer index", where)
        if raw.get("format_version") != FORMAT_VERSION:
            raise ArchiveError(
                f"index format version {raw.get('format_version')!r} is not supported "
                f"(this lambdaslim reads {FORMAT_VERSION}); repack the layer", where)
        return LayerIndex(
            layer_id=str(raw["layer_id"]),
            created_by=str(raw.get("created_by", "")),
            zstd_level=int(raw.get("zstd_level", 0)),
            part_bytes=int(raw.get("part_bytes", 0)),
            units=[_parse_unit(u, where) for u in raw["units"]],
        )
    except ArchiveError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArchiveError(f"corrupt index: {exc.__class__.__name__}: {exc}", where) from None


def read_index(folder: str) -> LayerIndex:
    """Read ``<folder>/index.json``."""
    path = os.path.join(folder, INDEX_NAME)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ArchiveError(f"cannot read index: {exc.strerror}", path) from None
    index = loads(data, path)
    index.folder = folder
    return index
