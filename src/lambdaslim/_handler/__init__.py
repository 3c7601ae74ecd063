"""The handler part: ``@lambdaslim.handler``, ``lambdaslim.scratch()`` and ``remaining()``.

Cold-start facts live in one place, :mod:`._coldstart`; everything else here reads them.
"""

from __future__ import annotations

from ._decorator import handler
from ._errors import ResponseTooLargeError, ScratchError
from ._invocation import current_invocation, remaining
from ._options import LAMBDA_RESPONSE_LIMIT
from ._scratch import scratch

__all__ = [
    "LAMBDA_RESPONSE_LIMIT",
    "ResponseTooLargeError",
    "ScratchError",
    "current_invocation",
    "handler",
    "remaining",
    "scratch",
]
