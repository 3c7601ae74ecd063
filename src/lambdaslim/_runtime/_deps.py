"""zstandard and filelock, loaded on first use: lambdaslim's private copies in a layer.

A layer's ``python/lambdaslim/_vendor/`` holds them under lambdaslim's own name (``lambdaslim
pack`` rewrites their imports), so the function's ``import filelock`` finds the function's
own filelock, or none, never lambdaslim's; and ``importlib.metadata`` lists only the user's.
Outside a layer (a development install) the installed packages are used.
"""

from __future__ import annotations

import importlib
from types import ModuleType

VENDOR = "lambdaslim._vendor"


def _load(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"{VENDOR}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in (VENDOR, f"{VENDOR}.{name}"):
            raise  # the private copy is there but broken: say so, do not mask it
    return importlib.import_module(name)


def zstandard() -> ModuleType:
    """The zstandard module lambdaslim decompresses with."""
    return _load("zstandard")


def filelock() -> ModuleType:
    """The filelock module lambdaslim locks the extraction root with."""
    return _load("filelock")
