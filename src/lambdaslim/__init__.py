"""lambdaslim: run big machine-learning dependencies on AWS Lambda.

The public API is re-exported here. Names whose modules are not needed at cold start are
loaded on first access, so ``import lambdaslim`` stays cheap (see tests/test_import_time.py).
"""

from __future__ import annotations

from ._runtime._errors import ArchiveError, StorageBudgetError
from ._errors import LambdaslimError
from ._version import __version__

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: ``import lambdaslim`` must not import typing
if TYPE_CHECKING:  # pragma: no cover
    # What __getattr__ returns, for type checkers and the API reference (never run).
    from ._handler import handler as handler, remaining as remaining, scratch as scratch
    from ._handler._errors import ResponseTooLargeError as ResponseTooLargeError
    from ._runtime._errors import StubbedDistributionError as StubbedDistributionError
    from .build._errors import PackError as PackError

# name -> module that defines it; imported on first attribute access.
_LAZY: dict[str, str] = {
    "PackError": ".build._errors",  # the build part: not in a layer's copy of lambdaslim
    "StubbedDistributionError": "._runtime._errors",
    "handler": "._handler",
    "remaining": "._handler",
    "ResponseTooLargeError": "._handler._errors",
    "scratch": "._handler",
}

__all__ = [
    "ArchiveError",
    "LambdaslimError",
    "StorageBudgetError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lambdaslim' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
