"""Which build step removed which files, written into the layer so ``verify`` can say it.

Each distribution's dist-info gets ``LAMBDASLIM_REMOVED``: one ``step<TAB>path`` line per file
or folder a step removed (a folder whose every file the same step removed is one line,
ending in ``/``). ``verify`` matches a failed import or a missing file against it and names
the step (and ``--keep PATTERN`` brings it back).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Iterable

from . import _record

REMOVED = "LAMBDASLIM_REMOVED"


def _files_per_folder(paths: Iterable[str]) -> Counter[str]:
    """How many of ``paths`` lie under each folder, at any depth."""
    counts: Counter[str] = Counter()
    for rel in paths:
        parent = rel.rpartition("/")[0]
        while parent:
            counts[parent] += 1
            parent = parent.rpartition("/")[0]
    return counts


def _collapse(paths: set[str], original: Collection[str]) -> list[str]:
    """``paths`` with every folder all of whose original files are in ``paths`` written once."""
    total, gone = _files_per_folder(original), _files_per_folder(paths)
    out: set[str] = set()
    for rel in paths:
        top = rel
        parent = rel.rpartition("/")[0]
        while parent and gone[parent] == total[parent]:
            top = parent + "/"
            parent = parent.rpartition("/")[0]
        out.add(top)
    return sorted(out)


def record(root: str, owners: dict[str, str], original: Collection[str],
           removed: Iterable[tuple[str, Iterable[str]]]) -> None:
    """Write ``LAMBDASLIM_REMOVED`` into each dist-info that lost files.

    ``owners`` ({relpath: dist-info}) and ``original`` (every relpath) are from before the
    first step; ``removed`` is (step, relpaths) in the order the steps ran.
    """
    lines: dict[str, list[str]] = {}
    for step, paths in removed:
        by_dist: dict[str, set[str]] = {}
        for rel in paths:
            d = owners.get(rel)
            if d is not None:
                by_dist.setdefault(d, set()).add(rel)
        for d, rels in by_dist.items():
            lines.setdefault(d, []).extend(f"{step}\t{p}" for p in _collapse(rels, original))
    written: dict[str, list[str]] = {}
    for d, rows in lines.items():
        if not os.path.isdir(os.path.join(root, d)):
            continue
        with open(os.path.join(root, d, REMOVED), "w", encoding="utf-8") as fh:
            fh.write("\n".join(rows) + "\n")
        written[d] = [f"{d}/{REMOVED}"]
    _record.sync_records(root, added=written)


def read(meta_root: str) -> list[tuple[str, str]]:
    """Every (step, path) of every ``LAMBDASLIM_REMOVED`` under ``meta_root`` (dist-info folders)."""
    out: list[tuple[str, str]] = []
    for dirpath, _dirs, files in os.walk(meta_root):
        if REMOVED in files and dirpath.endswith(".dist-info"):
            with open(os.path.join(dirpath, REMOVED), encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    step, _, path = line.rstrip("\n").partition("\t")
                    if path:
                        out.append((step, path))
    return out


def blame(removed: list[tuple[str, str]], *, module: str | None = None,
          filename: str | None = None) -> tuple[str, str] | None:
    """The (step, path) that removed ``module`` (a dotted name) or ``filename`` (any absolute
    path ending in a tree's relpath), or None when no step did."""
    base = module.replace(".", "/") if module else None
    norm = "/" + filename.replace(os.sep, "/").strip("/") if filename else None
    for step, path in removed:
        folder = path.endswith("/")
        p = path.rstrip("/")
        if base is not None and (
                (folder and (base + "/").startswith(path))  # a folder above the module
                or p in (f"{base}.py", f"{base}/__init__.py")
                or (p.startswith(base + ".") and p.endswith(".so"))):
            return step, path
        if norm is not None and (norm.endswith("/" + p) or (folder and f"/{path}" in norm + "/")):
            return step, path
    return None
