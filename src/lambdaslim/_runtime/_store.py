"""Publish extracted trees under ``<root>/units/<key>/``: exactly once, crash-safe, budgeted.

A tree is written into ``staging/`` and renamed into ``units/`` only when complete, with a
marker that ties it to the unit's sha256; so a process killed mid-way leaves a staging folder
that is never imported and is swept at the next start. One file lock per unit makes N
processes that need it at once extract it once: the others wait, then reuse the tree. Reusing
a complete tree takes no lock and decompresses nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Callable

from ._budget import MARKER, Budget, owner, owner_alive, read_small, remove, write_small

# extract(dest) writes the whole tree into the new folder ``dest``.
Extractor = Callable[[str], object]
# files() lists (path, size) of every file a complete tree holds.
FileList = Callable[[], list[tuple[str, int]]]


def read_marker(tree: str) -> dict[str, object] | None:
    """The completion marker, or None when it is missing, not a regular file, or not JSON."""
    try:
        data = json.loads(read_small(os.path.join(tree, MARKER)))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def tree_ok(tree: str, files: list[tuple[str, int]]) -> bool:
    """The cheap warm-start check: every file is there, a regular file of its size (no reads).

    One ``lstat`` per file, relative to the tree's open folder (a third cheaper than full
    paths: the kernel does not walk the extraction root again for every file).
    """
    lstat, regular = os.lstat, stat.S_ISREG
    try:
        fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        for path, size in files:
            st = lstat(path, dir_fd=fd)
            if not regular(st.st_mode) or st.st_size != size:
                return False
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def is_complete(budget: Budget, key: str, sha256: str, files: FileList | None = None) -> bool:
    """True when ``units/<key>`` is a published tree of exactly this content, still whole."""
    tree = budget.path("units", key)
    try:
        if not stat.S_ISDIR(os.lstat(tree).st_mode):
            return False
    except OSError:
        return False
    marker = read_marker(tree)
    return marker is not None and marker.get("sha256") == sha256 and (files is None or tree_ok(tree, files()))


def sweep_staging(budget: Budget, key: str | None = None) -> int:
    """Remove what dead processes left in staging/ (whatever the names), and ``key``'s (we hold its lock)."""
    removed = 0
    if key is None:
        budget.reserved_bytes(sweep=True)  # reservations of dead processes go too
    try:
        names = os.listdir(budget.path("staging"))
    except FileNotFoundError:
        return 0
    for name in names:
        stem, _, rest = name.rpartition(".stage")
        if (key is not None and stem == key) or not owner_alive(rest.split(".", 1)[0]):
            remove(budget.path("staging", name))
            removed += 1
    return removed


def publish(
    budget: Budget,
    *,
    key: str,
    sha256: str,
    what: str,
    disk_bytes: int,
    extract: Extractor,
    info: dict[str, object] | None = None,
    files: FileList | None = None,
) -> tuple[str, float, bool]:
    """Make ``units/<key>`` hold the complete tree; returns (path, seconds, extracted_here).

    A published tree is reused only when :func:`is_complete` (with ``files``, the cheap tree
    check) says so; otherwise it is set aside and extracted again.
    Raises :class:`~lambdaslim.StorageBudgetError` before writing when it does not fit.
    """
    final = budget.path("units", key)
    if is_complete(budget, key, sha256, files):
        return final, 0.0, False
    budget.ensure_dirs()
    with budget.lock("unit-" + key):
        if is_complete(budget, key, sha256, files):
            return final, 0.0, False  # another process extracted it while we waited
        sweep_staging(budget, key)  # whoever staged this key before us is gone: we hold its lock
        if os.path.lexists(final):  # a tree of other content (or broken): set aside, then delete
            doomed = budget.path("staging", f"{key}.stage{owner()}.old")
            os.rename(final, doomed)
            remove(doomed)
        with budget.reserve(what, disk_bytes):
            staging = budget.path("staging", f"{key}.stage{owner()}.{time.monotonic_ns()}")
            started = time.monotonic()
            try:
                os.mkdir(staging)
                extract(staging)
                seconds = time.monotonic() - started
                marker = {"sha256": sha256, "disk_bytes": disk_bytes, "seconds": round(seconds, 4), **(info or {})}
                write_small(os.path.join(staging, MARKER), json.dumps(marker))
                os.rename(staging, final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    return final, seconds, True


def unpublish(budget: Budget, key: str) -> bool:
    """Delete ``units/<key>`` (moved aside first, so no process sees a half-deleted tree)."""
    final = budget.path("units", key)
    if not os.path.isdir(final):
        return False
    budget.ensure_dirs()
    with budget.lock("unit-" + key):
        if not os.path.isdir(final):
            return False
        doomed = budget.path("staging", f"{key}.stage{owner()}.released")
        os.rename(final, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    return True
