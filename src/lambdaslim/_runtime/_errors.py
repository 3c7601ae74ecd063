"""Errors of the runtime part: a bad layer, a full budget, a stubbed distribution.

``StubbedDistributionError`` is imported by every stub a layer ships, so this module stays
tiny and imports nothing heavy.
"""

from __future__ import annotations

import errno
import os

from .._errors import LambdaslimError


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



class StubbedDistributionError(LambdaslimError, ImportError):
    """Code used a distribution that ``lambdaslim pack --stub NAME`` replaced by an empty stub.

    An :class:`ImportError`, so ``try: ... except ImportError`` fallbacks keep working.
    ``distribution`` is the stubbed distribution, ``module`` the stub module, ``attribute``
    the name that was asked for.
    """

    def __init__(self, distribution: str, module: str, attribute: str) -> None:
        self.distribution = distribution
        self.module = module
        self.attribute = attribute
        super().__init__(
            f"{module}.{attribute}: {distribution} was replaced by an empty stub when this layer "
            f"was packed (lambdaslim pack --stub {distribution}); repack without --stub "
            f"{distribution} if the function needs it", name=module)


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"
