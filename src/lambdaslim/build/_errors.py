"""Errors of the build part (``lambdaslim pack``, ``inspect``, ``verify``)."""

from __future__ import annotations

import os

from .._errors import LambdaslimError


class PackError(LambdaslimError, ValueError):
    """The input to ``lambdaslim pack`` cannot be packed (missing folder, bad RECORD, ...)."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = os.fspath(path) if path is not None else None
