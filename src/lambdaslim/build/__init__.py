"""The build part: ``lambdaslim pack``, ``inspect`` and ``verify``. Never shipped in a layer.

Scan a site-packages folder into units, prune and strip it, stub what is not needed, pack each
distribution with zstd, and check the result against Lambda's limits.
"""

from __future__ import annotations

from ._build import BuildOptions, build
from ._errors import PackError
from ._inspect import render, report
from ._pack import DEFAULT_LEVEL, DEFAULT_PART_BYTES, pack_tree
from ._verify import VerifyError, verify

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_PART_BYTES",
    "BuildOptions",
    "PackError",
    "VerifyError",
    "build",
    "pack_tree",
    "render",
    "report",
    "verify",
]
