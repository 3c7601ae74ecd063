"""Errors of the test harness: the local runtime and the S3 server."""

from __future__ import annotations

from .._errors import LambdaslimError


class EmulatorError(LambdaslimError, RuntimeError):
    """The local runtime could not be started or answered nonsense."""


class S3ServerError(RuntimeError):
    """The server did not start (the message holds the end of its log)."""
