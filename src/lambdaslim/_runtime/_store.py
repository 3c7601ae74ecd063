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
import time
from collections.abc import Callable

from ._budget import MARKER, Budget, pid_alive

# extract(dest) writes the whole tree into the new folder ``dest``.
Extractor = Callable[[str], object]


def read_marker(tree: str) -> dict[str, object] | None:
    try:
        with open(os.path.join(tree, MARKER), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(budget: Budget, key: str, sha256: str) -> bool:
    """True when ``units/<key>`` is a published tree of exactly this content."""
    marker = read_marker(budget.path("units", key))
    return marker is not None and marker.get("sha256") == sha256


def sweep_staging(budget: Budget, key: str | None = None) -> int:
    """Remove staging folders left by dead processes (all, or those of ``key``, whose lock we hold)."""
    removed = 0
    try:
        names = os.listdir(budget.path("staging"))
    except FileNotFoundError:
        return 0
    for name in names:
        stem, _, rest = name.rpartition(".stage")
        pid_text = rest.split(".", 1)[0]
        owner_dead = not pid_text.isdigit() or not pid_alive(int(pid_text))
        if (key is not None and stem == key) or owner_dead:
            shutil.rmtree(budget.path("staging", name), ignore_errors=True)
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
) -> tuple[str, float, bool]:
    """Make ``units/<key>`` hold the complete tree; returns (path, seconds, extracted_here).

    Raises :class:`~lambdaslim.StorageBudgetError` before writing when it does not fit.
    """
    final = budget.path("units", key)
    if is_complete(budget, key, sha256):
        return final, 0.0, False
    budget.ensure_dirs()
    with budget.lock("unit-" + key):
        if is_complete(budget, key, sha256):
            return final, 0.0, False  # another process extracted it while we waited
        sweep_staging(budget, key)  # whoever staged this key before us is gone: we hold its lock
        if os.path.lexists(final):  # a tree of other content (or broken): set aside, then delete
            doomed = budget.path("staging", f"{key}.stage{os.getpid()}.old")
            os.rename(final, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        with budget.reserve(what, disk_bytes):
            staging = budget.path("staging", f"{key}.stage{os.getpid()}.{time.monotonic_ns()}")
            started = time.monotonic()
            try:
                os.mkdir(staging)
                extract(staging)
                seconds = time.monotonic() - started
                marker = {"sha256": sha256, "disk_bytes": disk_bytes, "seconds": round(seconds, 4), **(info or {})}
                with open(os.path.join(staging, MARKER), "w", encoding="utf-8") as fh:
                    json.dump(marker, fh)
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
        doomed = budget.path("staging", f"{key}.stage{os.getpid()}.released")
        os.rename(final, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    return True
