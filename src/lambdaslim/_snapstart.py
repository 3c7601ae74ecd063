"""SnapStart hooks: extract eagerly before the snapshot, revalidate trees after a restore.

With SnapStart, Lambda runs the init phase once when a version is published, snapshots the
memory and disk (/tmp included) of the environment, and restores copies of it. Packages
extracted before the snapshot are then free for every restored copy, so the before-snapshot
hook extracts everything the layers hold. After a restore the hook checks that every tree the
bootstrap reported as extracted is still complete (its completion marker is there); if one
is not, it extracts again. It also tells the cold-start state that the next invocation is the
first of a restored sandbox.

The hooks only touch ``lambdaslim.bootstrap`` when the handler's module imported it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from ._budget import MARKER
from ._coldstart import STATE

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


def incomplete_trees() -> list[str]:
    """Distributions the bootstrap reports as extracted whose tree is gone or incomplete."""
    bootstrap = _bootstrap()
    if bootstrap is None:
        return []
    missing = []
    for name, info in bootstrap.status().items():
        if info.get("state") != "extracted":
            continue
        path = info.get("path")
        if not path or not os.path.isdir(path):
            missing.append(name)
            continue
        marker_dir = path
        # The marker sits at the unit's top (units/<key>/); the path may point below it.
        while not os.path.exists(os.path.join(marker_dir, MARKER)):
            parent = os.path.dirname(marker_dir)
            if parent == marker_dir or os.path.basename(parent) == "units":
                missing.append(name)
                break
            marker_dir = parent
    return missing


def after_restore() -> None:
    """Mark the restore for the cold-start state and re-extract trees that went missing."""
    STATE.restored_now()
    missing = incomplete_trees()
    if missing:
        logger.warning("lambdaslim: trees missing after restore, extracting again: %s", missing)
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
