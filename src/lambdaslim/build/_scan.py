"""Read a site-packages-like folder and group its files into units, one per distribution.

A distribution's files are those its ``*.dist-info/RECORD`` lists (which includes its vendored
``<name>.libs/`` folder), plus files no RECORD lists that sit under a top-level folder only it
claims (bytecode compiled later, for example). Everything else goes into one extra unit.
"""

from __future__ import annotations

import csv
import os
import re
import stat
from dataclasses import dataclass, field
from email.parser import HeaderParser

from .._runtime._names import import_names
from ._errors import PackError



@dataclass
class ScannedFile:
    relpath: str  # POSIX path relative to the source folder
    size: int
    mode: int


@dataclass
class ScannedUnit:
    name: str
    version: str
    kind: str  # "dist" or "unclaimed"
    dist_info: str | None
    files: list[ScannedFile] = field(default_factory=list)
    import_names: list[str] = field(default_factory=list)


def _walk(src: str) -> dict[str, ScannedFile]:
    """Every regular file under ``src``; symlinks and hard links are refused."""
    found: dict[str, ScannedFile] = {}
    for dirpath, dirnames, filenames in os.walk(src):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, src).replace(os.sep, "/")
            if stat.S_ISLNK(st.st_mode):
                raise PackError(f"{rel}: symbolic links cannot be packed (copy the target instead)", full)
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise PackError(f"{rel}: not a regular file", full)
            if st.st_nlink > 1:
                raise PackError(
                    f"{rel}: hard links cannot be packed (install with `pip install --target`, "
                    "or `uv pip install --link-mode=copy`)", full)
            found[rel] = ScannedFile(rel, st.st_size, 0o755 if st.st_mode & 0o111 else 0o644)
    return found


def _read_metadata(dist_info_dir: str) -> tuple[str, str]:
    path = os.path.join(dist_info_dir, "METADATA")
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            headers = HeaderParser().parse(fh)
    except OSError:
        raise PackError(f"{os.path.basename(dist_info_dir)} has no METADATA file", path) from None
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise PackError(f"{os.path.basename(dist_info_dir)}/METADATA lacks Name or Version", path)
    return str(name), str(version)


def _read_record(dist_info_dir: str, src: str) -> list[str]:
    """The RECORD's paths that lie inside ``src``, normalised; a corrupt RECORD raises."""
    path = os.path.join(dist_info_dir, "RECORD")
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise PackError(f"{os.path.basename(dist_info_dir)} has no RECORD file", path) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PackError(f"corrupt RECORD in {os.path.basename(dist_info_dir)}: {exc}", path) from None
    paths: list[str] = []
    for lineno, row in enumerate(rows, 1):
        if not row:
            continue
        if len(row) != 3 or not row[0]:
            raise PackError(
                f"corrupt RECORD in {os.path.basename(dist_info_dir)}, line {lineno}: "
                f"expected path,hash,size", path)
        entry = row[0]
        if entry.startswith("/") or re.match(r"^[A-Za-z]:", entry):
            continue  # absolute: scripts installed elsewhere, not part of this tree
        norm = os.path.normpath(entry).replace(os.sep, "/")
        if norm == ".." or norm.startswith("../"):
            continue  # e.g. ../../bin/script: outside the site-packages tree
        paths.append(norm)
    return paths


def scan(src: str) -> list[ScannedUnit]:
    """Group the files of ``src`` into units. Raises :class:`PackError` on bad input."""
    if not os.path.exists(src):
        raise PackError(f"{src}: no such folder", src)
    if not os.path.isdir(src):
        raise PackError(f"{src}: not a folder", src)
    files = _walk(src)
    if not files:
        raise PackError(f"{src}: the folder is empty, nothing to pack", src)

    units: list[ScannedUnit] = []
    owner: dict[str, ScannedUnit] = {}
    top_owner: dict[str, ScannedUnit | None] = {}  # top-level entry -> sole claimant (None: shared)
    dist_infos = sorted(
        d for d in os.listdir(src) if d.endswith(".dist-info") and os.path.isdir(os.path.join(src, d))
    )
    for d in dist_infos:
        full = os.path.join(src, d)
        name, version = _read_metadata(full)
        unit = ScannedUnit(name=name, version=version, kind="dist", dist_info=d)
        units.append(unit)
        claimed = [p for p in _read_record(full, src) if p in files]
        claimed += [p for p in files if p.startswith(d + "/")]  # the whole dist-info folder
        for rel in claimed:
            if rel in owner and owner[rel] is not unit:
                continue  # first claimant keeps it (two RECORDs listing one file)
            owner[rel] = unit
            top = rel.split("/")[0]
            if "/" in rel:
                prev = top_owner.get(top, unit)
                top_owner[top] = unit if prev is unit else None
    leftovers: list[str] = []
    for rel in files:
        if rel in owner:
            continue
        top = rel.split("/")[0]
        sole = top_owner.get(top)
        if "/" in rel and sole is not None:
            owner[rel] = sole
        else:
            leftovers.append(rel)
    for rel in sorted(files):
        unit_or_none = owner.get(rel)
        if unit_or_none is not None:
            unit_or_none.files.append(files[rel])
    if leftovers:
        extra = ScannedUnit(name="unclaimed-files", version="0", kind="unclaimed", dist_info=None)
        extra.files = [files[r] for r in sorted(leftovers)]
        units.append(extra)
    units = [u for u in units if u.files]
    for unit in units:
        unit.import_names = import_names([f.relpath for f in unit.files])
    return units
