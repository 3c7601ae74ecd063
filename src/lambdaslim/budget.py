"""Public view of the /tmp storage budget shared by extraction, the S3 cache and scratch.

>>> import lambdaslim.budget
>>> lambdaslim.budget.usage()["packages"]      # doctest: +SKIP
"""

from __future__ import annotations

from ._runtime._budget import Budget, Usage, get_budget

__all__ = ["Budget", "Usage", "available", "get_budget", "usage"]


def usage() -> Usage:
    """Bytes per category under the extraction root (packages, caches, scratch, other) and the limit."""
    return get_budget().usage()


def available() -> int:
    """Bytes that may still be written under the extraction root."""
    return get_budget().available()
