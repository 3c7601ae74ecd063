"""The packed-layer index: what a layer holds, readable without decompressing anything.

A packed layer is a folder ``<layer root>/lambdaslim/<layer id>/`` holding ``index.json``,
``parts/*.zst`` (each part one zstd frame: the bytes of a run of files, concatenated, in
index order) and ``meta/<dist>.dist-info/`` (copies for importlib.metadata before extraction).
See docs/format.md. This module is imported at cold start: json, os and stat only (no
dataclasses or typing: the first import miss would pay ~10 ms for them).
"""

from __future__ import annotations

import json
import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable
    from typing import Any

from . import _schema
from ._errors import ArchiveError

FORMAT = "lambdaslim-layer"
FORMAT_VERSION = 2  # 2: parts grouped by kind (code / meta / disk), code_bytes, native_disk_bytes
CODE, META, DISK = _schema.PART_KINDS  # part kinds: Python modules, dist-info, everything else
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

    ``disk_bytes``, ``unpacked_bytes``, ``code_bytes`` and ``native_disk_bytes`` are computed
    from the validated file table, never taken from the index as given. With ``lazy`` reading,
    the table is validated on first use (reading torch's 17,000-file index stays cheap).
    """

    def __init__(self, *, key: str, name: str, version: str, kind: str, import_names: list[str],
                 dist_info: str | None, unpacked_bytes: int, disk_bytes: int, packed_bytes: int,
                 sha256: str, parts: list[Part] | None = None, files: list[FileEntry] | None = None,
                 raw: dict[str, Any] | None = None, where: str = "", code_bytes: int = 0,
                 native_disk_bytes: int = 0) -> None:
        self.key, self.name, self.version, self.kind = key, name, version, kind
        self.import_names = import_names
        self.dist_info = dist_info
        self.declared_unpacked_bytes, self.declared_disk_bytes = unpacked_bytes, disk_bytes
        self.declared_code_bytes, self.declared_native_disk_bytes = code_bytes, native_disk_bytes
        self.packed_bytes = packed_bytes
        self.sha256 = sha256
        self._parts, self._files = parts, files
        self._raw, self._where = raw, where
        self._disk: int | None = None
        self._native: int | None = None
        self.files_count = len(files) if files is not None else len((raw or {}).get("files", ()))

    @property
    def disk_bytes(self) -> int:
        """Whole blocks per file and folder of the validated file table."""
        if self._disk is None:
            files = self.files
            self._disk = disk_bytes([f.size for f in files], len(_dirs(f.path for f in files)))
        return self._disk

    @property
    def unpacked_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def code_bytes(self) -> int:
        """The .py/.pyc bytes (code parts): served from memory in memory mode, never in /tmp."""
        files = self.files
        return sum(files[i].size for i in self._indices(CODE))

    @property
    def native_disk_bytes(self) -> int:
        """What memory mode writes (docs/bootstrap.md): the files of disk parts, whole blocks,
        and a block per folder of the unit (a slight over-estimate: memory mode skips the
        ``__pycache__`` and dist-info folders)."""
        if self._native is None:
            files = self.files
            self._native = disk_bytes([files[i].size for i in self._indices(DISK)],
                                      len(_dirs(f.path for f in files)))
        return self._native

    def disk_files(self) -> list[FileEntry]:
        """The files memory mode writes into ``units/<key>.m``: those of the disk parts."""
        files = self.files
        return [files[i] for i in self._indices(DISK)]

    def _indices(self, kind: str) -> list[int]:
        """Indices in ``files`` of the files held by parts of ``kind`` (each file once)."""
        out: list[int] = []
        for p in self.parts:
            if p.kind == kind and (p.offset is None or p.offset == 0):
                out.extend(range(p.first, p.first + p.count))
        return out

    def __repr__(self) -> str:
        return f"Unit({self.key!r})"

    def _load(self) -> None:
        if self._files is None or self._parts is None:
            assert self._raw is not None
            files, parts = _parse_table(self._raw, self._where)
            where, key = self._where, self.key
            if sum(f.size for f in files) != self.declared_unpacked_bytes:
                raise ArchiveError(f"unit {key!r} declares {self.declared_unpacked_bytes} bytes but its "
                                   f"files hold {sum(f.size for f in files)}", where)
            if sum(p.packed_bytes for p in parts) != self.packed_bytes:
                raise ArchiveError(f"unit {key!r} declares {self.packed_bytes} packed bytes but its "
                                   "parts disagree", where)
            if "files_count" in self._raw and self._raw["files_count"] != len(files):
                raise ArchiveError(f"unit {key!r} declares {self._raw['files_count']} files but lists "
                                   f"{len(files)}", where)
            self._files, self._parts = files, parts
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
    _schema.relpath(path, where)


def _dirs(paths: Iterable[str]) -> set[str]:
    dirs: set[str] = set()
    for path in paths:
        parent = path.rpartition("/")[0]
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    return dirs


_KIND_TEXT = {CODE: "Python code", META: "in the dist-info folder",
              DISK: "a file written to disk (neither Python code nor dist-info)"}


def _parse_table(raw: dict[str, Any], where: str) -> tuple[list[FileEntry], list[Part]]:
    """Validate a unit's file table and parts: safe paths, no duplicates, exact coverage."""
    files: list[FileEntry] = []
    seen: set[str] = set()
    dirs: set[str] = set()
    key = raw["key"]
    for item in raw["files"]:
        path, size, mode = _schema.file_row(item, where)
        if path in seen or path in dirs:
            raise ArchiveError(f"path {path!r} appears twice in unit {key!r}", where)
        seen.add(path)
        parent = path.rpartition("/")[0]
        while parent and parent not in dirs:
            if parent in seen:
                raise ArchiveError(f"path {parent!r} is both a file and a folder", where)
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
        files.append(FileEntry(path, size, 0o755 if mode & 0o111 else 0o644))
    parts: list[Part] = []
    next_file, next_offset = 0, 0  # where the next part must start
    for item in raw["parts"]:
        p = _schema.part_row(item, where)
        part = Part(path=p["path"], first=p["first"], count=p["count"], unpacked_bytes=p["unpacked_bytes"],
                    packed_bytes=p["packed_bytes"], sha256=p["sha256"], offset=p.get("offset"),
                    kind=p.get("kind", DISK))
        if part.first != next_file or (part.offset or 0) != next_offset:
            raise ArchiveError(f"parts of unit {key!r} do not cover its files in order", where)
        if part.offset is None:
            if part.first + part.count > len(files) or \
                    sum(f.size for f in files[part.first : part.first + part.count]) != part.unpacked_bytes:
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
        dist_info = raw.get("dist_info")
        for f in files[part.first : part.first + part.count]:
            if file_kind(f.path, dist_info) != part.kind:  # memory mode relies on it
                raise ArchiveError(f"{part.kind} part {part.path!r} holds {f.path!r}, which is not "
                                   f"{_KIND_TEXT[part.kind]}", where)
        parts.append(part)
    if next_file != len(files) or next_offset:
        raise ArchiveError(f"parts of unit {key!r} do not cover its files", where)
    return files, parts


def _parse_unit(raw: object, where: str) -> Unit:
    u = _schema.unit(raw, where)
    return Unit(
        key=u["key"],
        name=u["name"],
        version=u["version"],
        kind=u.get("kind", "dist"),
        import_names=list(u["import_names"]),
        dist_info=u.get("dist_info"),
        unpacked_bytes=u["unpacked_bytes"],
        disk_bytes=u["disk_bytes"],
        packed_bytes=u["packed_bytes"],
        code_bytes=u["code_bytes"],
        native_disk_bytes=u["native_disk_bytes"],
        sha256=u["sha256"],
        raw=u,
        where=where,
    )


def _load_all(index: LayerIndex) -> LayerIndex:
    """Validate every unit's table now (tools; the bootstrap validates lazily)."""
    for u in index.units:
        u._load()
    return index


def loads(text: str | bytes, where: str = "index.json", *, lazy: bool = False) -> LayerIndex:
    """Parse and validate an index; any defect raises :class:`ArchiveError` naming ``where``.

    Everything but the units' file tables is checked against the schema at once; with
    ``lazy``, each table is checked when first used (extraction, ``disk_bytes``) instead.
    """
    if len(text) > _schema.MAX_INDEX_BYTES:
        raise ArchiveError(f"index is {len(text)} bytes (at most {_schema.MAX_INDEX_BYTES})", where)
    try:
        raw = json.loads(text)
    except RecursionError:
        raise ArchiveError("corrupt index: nested too deeply", where) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, integers too long
        raise ArchiveError(f"corrupt index: {_schema._short(str(exc))}", where) from None
    raw = _schema.obj(raw, where, "the index")
    if raw.get("format") != FORMAT:
        raise ArchiveError("not a lambdaslim layer index", where)
    if raw.get("format_version") != FORMAT_VERSION:
        raise ArchiveError(
            f"index format version {_schema._short(raw.get('format_version'))} is not supported "
            f"(this lambdaslim reads {FORMAT_VERSION}); repack the layer", where)
    _schema.header(raw, where)
    units = [_parse_unit(u, where) for u in raw["units"]]
    keys: set[str] = set()
    for u in units:
        if u.key in keys:
            raise ArchiveError(f"unit key {u.key!r} appears twice", where)
        keys.add(u.key)
    index = LayerIndex(layer_id=raw["layer_id"], created_by=raw.get("created_by", ""),
                       zstd_level=raw.get("zstd_level", 0), part_bytes=raw.get("part_bytes", 0), units=units)
    return index if lazy else _load_all(index)


def read_index(folder: str, *, lazy: bool = False) -> LayerIndex:
    """Read ``<folder>/index.json`` (see :func:`loads` for ``lazy``); too big is refused unread."""
    path = os.path.join(folder, INDEX_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ArchiveError(f"cannot read index: {exc.strerror}", path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ArchiveError("index is not a regular file", path)
        if st.st_size > _schema.MAX_INDEX_BYTES:
            raise ArchiveError(f"index is {st.st_size} bytes (at most {_schema.MAX_INDEX_BYTES})", path)
        with open(fd, "rb", closefd=False) as fh:
            data = fh.read(_schema.MAX_INDEX_BYTES + 1)
    except OSError as exc:
        raise ArchiveError(f"cannot read index: {exc.strerror}", path) from None
    finally:
        os.close(fd)
    index = loads(data, path, lazy=lazy)
    index.folder = folder
    return index
