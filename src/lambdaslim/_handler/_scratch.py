"""Per-invocation scratch folders under the extraction root: ``lambdaslim.scratch()``.

A folder lives at ``<root>/scratch/<pid>-<request id>/`` inside the storage budget (so the
budget counts it, and an extraction that needs room sees it), and ``@lambdaslim.handler``
removes it when the invocation ends — returned, raised or timed out by the response guard.
A runtime killed mid-invocation (a Lambda timeout) leaves its folder behind; the first
invocation of the next process sweeps folders whose process is gone, so warm starts never
accumulate files in /tmp.
"""

from __future__ import annotations

import os
import re
import shutil

from .._runtime._budget import Budget, get_budget, pid_alive, tree_bytes
from ._errors import ScratchError
from .._size import parse_size

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def scratch(need: int | str | None = None) -> str:
    """The current invocation's scratch folder (created on first use), as a path.

    ``need`` (bytes or ``"200MB"``) checks there is room for that much first — evicting S3
    disk-cache entries if needed — and raises :class:`~lambdaslim.StorageBudgetError` before
    anything is written when there is not. The folder and everything in it are removed when
    the invocation ends. Repeated calls in one invocation return the same folder.
    """
    from ._invocation import current_invocation

    inv = current_invocation()
    if inv is None:
        raise ScratchError(
            "lambdaslim.scratch() works only inside a function decorated with "
            "@lambdaslim.handler (the folder is removed when the invocation ends)"
        )
    if inv.scratch_path is not None and need is None:
        return inv.scratch_path
    budget = get_budget()
    if need is not None:
        nbytes = parse_size(need)
        with budget.reserve(f"scratch for request {inv.request_id}", nbytes):
            pass
    if inv.scratch_path is None:
        name = f"{os.getpid()}-{_UNSAFE.sub('_', inv.request_id)[:80]}"
        path = budget.path("scratch", name)
        os.makedirs(path, exist_ok=True)
        inv.scratch_path = path
    return inv.scratch_path


def remove(path: str) -> int:
    """Delete a scratch folder; return the bytes it held."""
    held = tree_bytes(path)
    shutil.rmtree(path, ignore_errors=True)
    return held


def sweep(budget: Budget | None = None) -> int:
    """Remove scratch folders left by dead processes (or by an earlier life of this pid).

    Called once, at the first invocation of a process: no folder of this process exists yet,
    so one carrying this pid belongs to a killed runtime whose pid was reused.
    """
    budget = budget or get_budget()
    try:
        names = os.listdir(budget.path("scratch"))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    me = os.getpid()
    removed = 0
    for name in names:
        pid_text = name.split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid == me or not pid_alive(pid):
            removed += remove(budget.path("scratch", name))
    return removed
