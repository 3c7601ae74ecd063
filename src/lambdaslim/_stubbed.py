"""The error a distribution stubbed out at pack time raises (imported by the stub itself).

Kept tiny: a stub's ``__init__.py`` imports it at cold start.
"""

from __future__ import annotations

from ._errors import LambdaslimError


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
