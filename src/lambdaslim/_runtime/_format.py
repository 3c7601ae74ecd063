"""The packed-layer index: what a layer holds, readable without decompressing anything.

A packed layer is a folder ``<layer root>/lambdaslim/<layer id>/`` holding ``index.json``,
``parts/*.zst`` (each part one zstd frame: the bytes of a run of files, concatenated, in
index order) and ``meta/<dist>.dist-info/`` (copies for importlib.metadata before extraction).
See docs/format.md. This module is imported at cold start: json and os only.
"""

from __future__ import annotations

import json
import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

from ._errors import ArchiveError

FORMAT = "lambdaslim-layer"
FORMAT_VERSION = 2  # 2: parts grouped by kind (code / meta / disk), code_bytes, native_disk_bytes
CODE, META, DISK = "code", "meta", "disk"  # part kinds: Python modules, dist-info, everything else
INDEX_NAME = "index.json"
LAYER_DIR = "lambdaslim"  # inside a layer root such as /opt
BLOCK = 4096  # allocation unit used to estimate bytes on disk (ext4, tmpfs pages)


class _Record:
    """A small value class (dataclasses costs ~10 ms to import: the first import miss pays it)."""

    _fields: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, f) == getattr(other, f) for f in self._fields)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in self._fields))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self._fields)})"


class FileEntry(_Record):
    _fields = ("path", "size", "mode")

    def __init__(self, path: str, size: int, mode: int) -> None:
        self.path = path  # POSIX, relative to the unit's tree
        self.size = size
        self.mode = mode  # permission bits: 0o644 or 0o755


class Part(_Record):
    _fields = ("path", "first", "count", "unpacked_bytes", "packed_bytes", "sha256", "offset", "kind")

    def __init__(self, path: str, first: int, count: int, unpacked_bytes: int, packed_bytes: int,
                 sha256: str, offset: int | None = None, kind: str = DISK) -> None:
        self.path = path  # relative to the layer folder
        self.first = first  # index of its first file in Unit.files
        self.count = count
        self.unpacked_bytes = unpacked_bytes
        self.packed_bytes = packed_bytes
        self.sha256 = sha256
        self.offset = offset  # set: the part is bytes [offset, offset+unpacked) of file `first`
        self.kind = kind  # CODE parts hold only .py/.pyc, META parts only the dist-info folder

    def to_json(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self._fields if getattr(self, f) is not None}


def file_kind(path: str, dist_info: str | None) -> str:
    """Which kind of part a file goes into: Python code is served from memory, dist-info
    from the layer's ``meta/`` copy, everything else is written to disk."""
    if path.endswith((".py", ".pyc")):
        return CODE
    if dist_info and path.startswith(dist_info + "/"):
        return META
    return DISK


class Unit:
    """One distribution (or the files no RECORD claims), compressed on its own.

    The file table and parts are parsed and validated on first use (extraction), so that
    reading the indexes at cold start costs little even for torch's 17,000 files.
    """

    def __init__(self, *, key: str, name: str, version: str, kind: str, import_names: list[str],
                 dist_info: str | None, unpacked_bytes: int, disk_bytes: int, packed_bytes: int,
                 sha256: str, parts: list[Part] | None = None, files: list[FileEntry] | None = None,
                 raw: dict[str, Any] | None = None, where: str = "", code_bytes: int = 0,
                 native_disk_bytes: int | None = None) -> None:
        self.key, self.name, self.version, self.kind = key, name, version, kind
        self.import_names = import_names
        self.dist_info = dist_info
        self.unpacked_bytes, self.disk_bytes, self.packed_bytes = unpacked_bytes, disk_bytes, packed_bytes
        self.sha256 = sha256
        # Memory mode: the .py/.pyc bytes served from memory, and the disk the rest takes.
        self.code_bytes = code_bytes
        self.native_disk_bytes = disk_bytes if native_disk_bytes is None else native_disk_bytes
        self._parts, self._files = parts, files
        self._raw, self._where = raw, where
        self.files_count = len(files) if files is not None else int((raw or {}).get("files_count", 0))

    def __repr__(self) -> str:
        return f"Unit({self.key!r})"

    def _load(self) -> None:
        if self._files is None or self._parts is None:
            assert self._raw is not None
            try:
                self._files, self._parts = _parse_table(self._raw, self._where)
            except ArchiveError:
                raise
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ArchiveError(f"corrupt index: {exc.__class__.__name__}: {exc}", self._where) from None
            self._raw = None

    @property
    def files(self) -> list[FileEntry]:
        self._load()
        assert self._files is not None
        return self._files

    @property
    def parts(self) -> list[Part]:
        self._load()
        assert self._parts is not None
        return self._parts

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
            "code_bytes": self.code_bytes,
            "native_disk_bytes": self.native_disk_bytes,
            "sha256": self.sha256,
            "parts": [p.to_json() for p in self.parts],
            "files": [[f.path, f.size, f.mode] for f in self.files],
        }


class LayerIndex(_Record):
    _fields = ("layer_id", "created_by", "zstd_level", "part_bytes", "units", "folder")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, layer_id: str, created_by: str, zstd_level: int, part_bytes: int,
                 units: list[Unit], folder: str = "") -> None:
        self.layer_id, self.created_by = layer_id, created_by
        self.zstd_level, self.part_bytes = zstd_level, part_bytes
        self.units = units
        self.folder = folder  # where the index was read from (not serialised)

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


def _parse_table(raw: dict[str, Any], where: str) -> tuple[list[FileEntry], list[Part]]:
    """Validate a unit's file table and parts: safe paths, no duplicates, exact coverage."""
    files: list[FileEntry] = []
    seen: set[str] = set()
    dirs: set[str] = set()
    for item in raw["files"]:
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
    next_file, next_offset = 0, 0  # where the next part must start
    for p in raw["parts"]:
        offset = p.get("offset")
        part = Part(
            path=str(p["path"]),
            first=_int(p["first"], where, "part start"),
            count=_int(p["count"], where, "part length"),
            unpacked_bytes=_int(p["unpacked_bytes"], where, "part size"),
            packed_bytes=_int(p["packed_bytes"], where, "part size"),
            sha256=str(p["sha256"]),
            offset=None if offset is None else _int(offset, where, "part offset"),
            kind=str(p.get("kind", DISK)),
        )
        if part.kind not in (CODE, META, DISK):
            raise ArchiveError(f"part {part.path!r} has unknown kind {part.kind!r}", where)
        check_relpath(part.path, where)
        if part.first != next_file or (part.offset or 0) != next_offset:
            raise ArchiveError(f"parts of unit {raw['key']!r} do not cover its files in order", where)
        if part.offset is None:
            if sum(f.size for f in files[part.first : part.first + part.count]) != part.unpacked_bytes:
                raise ArchiveError(f"part {part.path!r} size disagrees with its files", where)
            next_file += part.count
        else:
            if part.count != 1 or part.first >= len(files) or part.unpacked_bytes == 0:
                raise ArchiveError(f"part {part.path!r} is a bad slice", where)
            end = part.offset + part.unpacked_bytes
            size = files[part.first].size
            if end > size:
                raise ArchiveError(f"part {part.path!r} size disagrees with its files", where)
            next_file, next_offset = (part.first + 1, 0) if end == size else (part.first, end)
        parts.append(part)
    if next_file != len(files) or next_offset:
        raise ArchiveError(f"parts of unit {raw['key']!r} do not cover its files", where)
    return files, parts


def _parse_unit(raw: dict[str, Any], where: str) -> Unit:
    key = str(raw["key"])
    check_relpath(key, where)
    if "/" in key or key.startswith("."):
        raise ArchiveError(f"bad unit key {key!r}", where)
    if not isinstance(raw["files"], list) or not isinstance(raw["parts"], list):
        raise ArchiveError(f"unit {key!r} has no file table", where)
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
        code_bytes=_int(raw["code_bytes"], where, "size"),
        native_disk_bytes=_int(raw["native_disk_bytes"], where, "size"),
        sha256=str(raw["sha256"]),
        raw=raw,
        where=where,
    )


def _load_all(index: LayerIndex) -> LayerIndex:
    """Validate every unit's table now (tools; the bootstrap validates lazily)."""
    for u in index.units:
        u._load()
    return index


def loads(text: str | bytes, where: str = "index.json", *, lazy: bool = False) -> LayerIndex:
    """Parse and validate an index; any defect raises :class:`ArchiveError` naming ``where``.

    With ``lazy``, each unit's file table is validated when first used instead.
    """
    try:
        raw = json.loads(text)
        if raw.get("format") != FORMAT:
            raise ArchiveError("not a lambdaslim layer index", where)
        if raw.get("format_version") != FORMAT_VERSION:
            raise ArchiveError(
                f"index format version {raw.get('format_version')!r} is not supported "
                f"(this lambdaslim reads {FORMAT_VERSION}); repack the layer", where)
        index = LayerIndex(
            layer_id=str(raw["layer_id"]),
            created_by=str(raw.get("created_by", "")),
            zstd_level=int(raw.get("zstd_level", 0)),
            part_bytes=int(raw.get("part_bytes", 0)),
            units=[_parse_unit(u, where) for u in raw["units"]],
        )
        return index if lazy else _load_all(index)
    except ArchiveError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArchiveError(f"corrupt index: {exc.__class__.__name__}: {exc}", where) from None


def read_index(folder: str, *, lazy: bool = False) -> LayerIndex:
    """Read ``<folder>/index.json`` (see :func:`loads` for ``lazy``)."""
    path = os.path.join(folder, INDEX_NAME)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ArchiveError(f"cannot read index: {exc.strerror}", path) from None
    index = loads(data, path, lazy=lazy)
    index.folder = folder
    return index
