"""``import lambdaslim.bootstrap``: make the packed layers in /opt importable, lazily.

Importing this module only installs an import hook (no file is read): the first import of a
name that a packed distribution provides extracts that distribution into the extraction root
(``LAMBDASLIM_TMP``, default ``/tmp/lambdaslim``) under a file lock, crash-safe and inside the
storage budget, and later processes of the same sandbox reuse the tree. Environment:

- ``LAMBDASLIM_LAYER_ROOTS``: where layers are looked for (default ``/opt`` and ``$LAMBDA_TASK_ROOT``)
- ``LAMBDASLIM_TMP_LIMIT``: cap the budget below the file system's size (``512MB``)
- ``LAMBDASLIM_EAGER=1``: extract everything at import (provisioned concurrency, SnapStart)
- ``LAMBDASLIM_CLEANUP=after-import``: delete trees once the import that needed them is done
"""

from __future__ import annotations

import os as _os
import time as _time
from ._runtime._finder import LayerFinder, install

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable
    from typing import Any

__all__ = ["extract_all", "finder", "imported_at", "release", "status"]

#: When this module was first imported (time.monotonic()): the handler's init timing uses it.
imported_at = _time.monotonic()

_finder: LayerFinder = install()


def finder() -> LayerFinder:
    """The import hook of this process."""
    return _finder


def status() -> dict[str, dict[str, Any]]:
    """Per distribution: ``state`` (packed, extracted, released), ``path``, sizes, ``seconds``."""
    return _finder.status()


def extract_all(workers: int | None = None) -> None:
    """Extract every packed distribution now, in parallel (provisioned concurrency, SnapStart)."""
    _finder.extract_all(workers)


def release(names: Iterable[str] | str | None = None) -> list[str]:
    """Delete extracted trees to give /tmp back; a later import that needs one extracts it again.

    ``names`` are distribution or import names; None releases everything extracted.
    Returns the distributions released.
    """
    return _finder.release(names)


if _os.environ.get("LAMBDASLIM_EAGER", "").strip().lower() in ("1", "true", "yes", "on"):
    extract_all()
