"""SnapStart hooks: extract eagerly before the snapshot, revalidate trees after a restore.

With SnapStart, Lambda runs the init phase once when a version is published, snapshots the
memory and disk (/tmp included) of the environment, and restores copies of it. Packages
extracted before the snapshot are then free for every restored copy, so the before-snapshot
hook extracts everything the layers hold. After a restore the hook checks that every tree the
bootstrap reported as extracted is still complete (its completion marker names the unit's
sha256); one that is not is extracted again. It also tells the cold-start state that the next invocation is the
first of a restored sandbox.

The hooks only touch ``lambdaslim.bootstrap`` when the handler's module imported it.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from . import _coldstart

logger = logging.getLogger("lambdaslim.snapstart")

_registered = False
_lock = threading.Lock()


def _bootstrap() -> Any:
    return sys.modules.get("lambdaslim.bootstrap")


def before_snapshot() -> None:
    """Extract every packed distribution now, so the snapshot carries the trees."""
    bootstrap = _bootstrap()
    if bootstrap is not None:
        bootstrap.extract_all()


def revalidate() -> list[str]:
    """Distributions whose extracted tree is gone or incomplete after a restore.

    Each is marked packed again so that the next import (or :func:`after_restore`'s
    ``extract_all()``) extracts it anew instead of trusting a broken tree.
    """
    bootstrap = _bootstrap()
    if bootstrap is None:
        return []
    from .._runtime._finder import EXTRACTED, PACKED
    from .._runtime._store import is_complete

    finder = bootstrap.finder()
    stale = []
    for entry in finder.entries():
        if entry.state == EXTRACTED and not is_complete(finder.budget, entry.key, entry.sha256):
            entry.state, entry.path = PACKED, None
            stale.append(entry.name)
    return stale


def after_restore() -> None:
    """Mark the restore for the cold-start state and re-extract trees that went missing."""
    _coldstart.STATE.restored_now()
    stale = revalidate()
    if stale:
        logger.warning("lambdaslim: trees incomplete after restore, extracting again: %s", stale)
        _bootstrap().extract_all()


def register_hooks() -> bool:
    """Register both hooks once per process; False when ``snapshot_restore_py`` is absent."""
    global _registered
    with _lock:
        if _registered:
            return True
        try:
            from snapshot_restore_py import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
                register_after_restore,
                register_before_snapshot,
            )
        except ImportError:
            return False
        register_before_snapshot(before_snapshot)
        register_after_restore(after_restore)
        _registered = True
        return True
