"""The invocation under way: its request id, deadline and scratch folder, and ``remaining()``."""

from __future__ import annotations

import contextvars
import math
import time

from . import _coldstart


class Invocation:
    """What the wrapper knows about the invocation under way."""

    __slots__ = ("request_id", "start", "deadline", "first", "cold", "scratch_path")

    def __init__(self, request_id: str, start: float, deadline: float | None, first: bool) -> None:
        self.request_id = request_id
        self.start = start
        self.deadline = deadline
        self.first = first
        self.cold = _coldstart.STATE.is_cold(first)
        self.scratch_path: str | None = None


_CURRENT: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar(
    "lambdaslim_invocation", default=None
)
# Lambda runs one invocation per process at a time: threads the handler starts (which do not
# inherit context variables) still find it here.
_ACTIVE: list[Invocation] = []


def current_invocation() -> Invocation | None:
    """The invocation of a decorated handler under way in this context, or None."""
    inv = _CURRENT.get()
    if inv is None and len(_ACTIVE) == 1:
        return _ACTIVE[0]
    return inv


def remaining() -> float:
    """Seconds left before the current invocation's timeout (``math.inf`` outside one)."""
    inv = current_invocation()
    if inv is None or inv.deadline is None:
        return math.inf
    return max(0.0, inv.deadline - time.monotonic())


def enter(inv: Invocation) -> contextvars.Token[Invocation | None]:
    """Make ``inv`` the current invocation (of this context, and of the process's threads)."""
    _ACTIVE.append(inv)
    return _CURRENT.set(inv)


def leave(inv: Invocation, token: contextvars.Token[Invocation | None]) -> None:
    """Undo :func:`enter`."""
    try:
        _ACTIVE.remove(inv)
    except ValueError:
        pass
    try:
        _CURRENT.reset(token)
    except ValueError:
        pass  # closed in another context (an async wrapper resumed elsewhere)
