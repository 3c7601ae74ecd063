"""The schema of ``index.json``: every field's type, range and shape, checked before any is used.

A layer is data from outside the process: nothing of it is trusted until it passed here.
Each check raises :class:`ArchiveError` naming the index and the field, never a foreign
exception. Fields this version does not know are ignored (newer packers may add some; a
change that old readers must not misread bumps ``format_version`` instead).
Kept free of heavy imports: it runs at the first import miss of a cold start.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

from ._errors import ArchiveError

MAX_INDEX_BYTES = 64 << 20  # torch's index is ~2 MB; a bigger one is refused unread
MAX_PATH_CHARS = 1024  # relative to the tree; Linux allows 4096 for the whole path
MAX_NAME_BYTES = 255  # one path component (NAME_MAX)
MAX_DEPTH = 64  # folders deep; real wheels stay under 20
MAX_SIZE = 1 << 44  # 16 TiB: any size field beyond is a lie
MAX_TEXT = 256  # names, versions, keys
_HEX = frozenset("0123456789abcdef")
PART_KINDS = ("code", "meta", "disk")  # _format.CODE, META, DISK (format 2)
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")


def relpath(path: object, where: str, what: str = "path") -> str:
    """A safe relative POSIX path: no absolute, ``..``, empty or odd component, bounded sizes."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH_CHARS:
        raise ArchiveError(f"unsafe {what} {_short(path)} in archive", where)
    if path.startswith("/") or "\\" in path or "\x00" in path:
        raise ArchiveError(f"unsafe {what} {_short(path)} in archive", where)
    parts = path.split("/")
    if len(parts) > MAX_DEPTH:
        raise ArchiveError(f"{what} {_short(path)} is {len(parts)} folders deep (at most {MAX_DEPTH})", where)
    try:
        size = len(path.encode("utf-8"))
    except UnicodeError:
        raise ArchiveError(f"{what} {_short(path)} is not valid UTF-8", where) from None
    if "" in parts or "." in parts or ".." in parts or (
            size > MAX_NAME_BYTES and max(len(p.encode()) for p in parts) > MAX_NAME_BYTES):
        raise ArchiveError(f"unsafe {what} {_short(path)} in archive", where)
    return path


def integer(value: object, where: str, what: str, top: int = MAX_SIZE) -> int:
    if type(value) is not int or not 0 <= value <= top:
        raise ArchiveError(f"bad {what} {_short(value)} in index (an integer 0..{top} is needed)", where)
    return value


def text(value: object, where: str, what: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT or (not value and not empty) \
            or not value.isprintable():
        raise ArchiveError(f"bad {what} {_short(value)} in index", where)
    return value


def sha256(value: object, where: str, what: str = "sha256") -> str:
    if not isinstance(value, str) or len(value) != 64 or not _HEX.issuperset(value):
        raise ArchiveError(f"bad {what} {_short(value)} in index (64 lowercase hex digits)", where)
    return value


def key(value: object, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT or value[0] == "." \
            or not _KEY_CHARS.issuperset(value):
        raise ArchiveError(f"bad unit key {_short(value)} in index", where)
    return value


def import_names(value: object, where: str) -> list[str]:
    if not isinstance(value, list):
        raise ArchiveError(f"bad import_names {_short(value)} in index (a list of names)", where)
    for name in value:
        if not isinstance(name, str) or len(name) > MAX_TEXT or not all(p.isidentifier() for p in name.split(".")):
            raise ArchiveError(f"bad import name {_short(name)} in index", where)
    return value


def obj(value: object, where: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ArchiveError(f"{what} is not a JSON object in index", where)
    return value


def seq(value: object, where: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ArchiveError(f"{what} is not a JSON list in index", where)
    return value


def header(raw: dict[str, Any], where: str) -> None:
    """The layer's own fields (format and version are checked by the caller first)."""
    key(raw.get("layer_id"), where)
    text(raw.get("created_by", ""), where, "created_by", empty=True)
    integer(raw.get("zstd_level", 0), where, "zstd_level", 22)
    integer(raw.get("part_bytes", 0), where, "part_bytes")
    seq(raw.get("units"), where, "units")


def unit(raw: object, where: str) -> dict[str, Any]:
    """One unit's scalar fields; the file table is checked by :func:`file_table`."""
    u = obj(raw, where, "a unit")
    k = key(u.get("key"), where)
    text(u.get("name"), where, f"name of unit {k}")
    text(u.get("version"), where, f"version of unit {k}", empty=True)
    text(u.get("kind", "dist"), where, f"kind of unit {k}")
    import_names(u.get("import_names"), where)
    dist_info = u.get("dist_info")
    if dist_info is not None:
        relpath(dist_info, where, "dist_info")
        if "/" in dist_info or not dist_info.endswith(".dist-info"):
            raise ArchiveError(f"bad dist_info {_short(dist_info)} of unit {k} (one *.dist-info folder)", where)
    # Declared sizes are checked for type and range only: the sizes used are computed from the
    # validated file table (_format.Unit), whatever these say.
    for field in ("unpacked_bytes", "disk_bytes", "packed_bytes", "code_bytes", "native_disk_bytes"):
        integer(u.get(field), where, f"{field} of unit {k}")
    if "files_count" in u:
        integer(u["files_count"], where, f"files_count of unit {k}")
    sha256(u.get("sha256"), where, f"sha256 of unit {k}")
    seq(u.get("files"), where, f"files of unit {k}")
    seq(u.get("parts"), where, f"parts of unit {k}")
    return u


def file_row(item: object, where: str) -> tuple[str, int, int]:
    if not isinstance(item, list) or len(item) != 3:
        raise ArchiveError(f"bad file entry {_short(item)} in index ([path, size, mode])", where)
    path, size, mode = item
    return relpath(path, where), integer(size, where, "file size"), integer(mode, where, "file mode", 0o7777)


def part_row(item: object, where: str) -> dict[str, Any]:
    p = obj(item, where, "a part")
    relpath(p.get("path"), where, "part path")
    for field in ("first", "count", "unpacked_bytes", "packed_bytes"):
        integer(p.get(field), where, f"part {field}")
    sha256(p.get("sha256"), where, "part sha256")
    if p.get("offset") is not None:
        integer(p["offset"], where, "part offset")
    if p.get("kind", "disk") not in PART_KINDS:
        raise ArchiveError(f"part {_short(p['path'])} has unknown kind {_short(p.get('kind'))} "
                           f"(one of {', '.join(PART_KINDS)})", where)
    return p


def _short(value: object) -> str:
    """A bounded repr for messages: a hostile index must not make a 100 MB error message."""
    if isinstance(value, (list, dict)):
        return f"(a JSON {'list' if isinstance(value, list) else 'object'} of {len(value)})"
    text = repr(value) if not isinstance(value, int) or abs(value) < 1 << 64 else "(a huge integer)"
    return text if len(text) <= 80 else text[:77] + "..."
