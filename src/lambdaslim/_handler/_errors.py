"""Errors of the handler part: the response guard and the scratch folder."""

from __future__ import annotations

from .._errors import LambdaslimError
from .._size import format_size


class ResponseTooLargeError(LambdaslimError, ValueError):
    """The handler's response, serialised as JSON, is larger than the configured limit.

    Raised inside the invocation, before Lambda would fail it with a less useful message.
    Set ``offload="s3://bucket/prefix"`` (or ``LAMBDASLIM_OFFLOAD``) to return large
    responses through S3 instead.
    """

    def __init__(self, size: int, limit: int, request_id: str) -> None:
        self.size = size
        self.limit = limit
        self.request_id = request_id
        super().__init__(
            f"the response of request {request_id} is {size} bytes as JSON "
            f"({format_size(size)}), over the {limit}-byte limit; return less, or set "
            f"offload='s3://bucket/prefix' (LAMBDASLIM_OFFLOAD) to send it through S3"
        )


class ScratchError(LambdaslimError, LookupError):
    """``lambdaslim.scratch()`` was called outside an invocation of a decorated handler."""
