"""Exception types. Each carries the facts (paths, sizes) a user needs to act."""

from __future__ import annotations

import errno
import os


class LambdaslimError(Exception):
    """Base class of every error lambdaslim raises on purpose."""


class PackError(LambdaslimError, ValueError):
    """The input to ``lambdaslim pack`` cannot be packed (missing folder, bad RECORD, ...)."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = os.fspath(path) if path is not None else None


class ArchiveError(LambdaslimError, ValueError):
    """A packed layer, a part or a zip bundle is corrupt, truncated or hostile.

    Nothing outside the extraction root is ever written, and nothing half-written is left
    behind when this is raised.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(f"{message} ({os.fspath(path)})" if path is not None else message)
        self.path = os.fspath(path) if path is not None else None


class StorageBudgetError(LambdaslimError, OSError):
    """Writing would exceed the /tmp budget; raised *before* anything is written.

    An :class:`OSError` with ``errno.ENOSPC``, so code that handles a full disk handles it.
    """

    def __init__(self, what: str, needed: int, available: int, limit: int, root: str) -> None:
        self.what = what
        self.needed = needed
        self.available = available
        self.limit = limit
        self.root = root
        # The smallest EphemeralStorage (MB, Lambda's unit, 512..10240) that fits.
        shortfall = max(0, needed - available)
        self.suggested_mb = min(10240, max(512, -(-(limit + shortfall) // 1_000_000) + 1))
        message = (
            f"{what} needs {_mb(needed)} in {root} but only {_mb(available)} of the "
            f"{_mb(limit)} budget is free; set the function's EphemeralStorage to at "
            f"least {self.suggested_mb} MB (or LAMBDASLIM_TMP_LIMIT), or release extracted "
            f"packages with lambdaslim.bootstrap.release()"
        )
        OSError.__init__(self, errno.ENOSPC, message)

    def __str__(self) -> str:
        return str(self.strerror)


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"
