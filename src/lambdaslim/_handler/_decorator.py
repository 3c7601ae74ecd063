"""``@lambdaslim.handler``: cold-start and /tmp observability, response and time guards.

Wraps a Lambda handler (plain or ``async def``) and, per invocation:

* tells cold from warm (:mod:`lambdaslim._handler._coldstart`), measures init on the first call
  (process start to first call, plus the extraction seconds ``lambdaslim.bootstrap`` spent,
  read only when the bootstrap is already imported) and the invocation's duration;
* logs one structured JSON line through :mod:`logging` (logger ``lambdaslim.handler``) and,
  when asked, CloudWatch Embedded Metric Format metrics on stdout;
* removes the invocation's :func:`lambdaslim.scratch` folder whatever happens;
* refuses a response whose JSON is larger than Lambda accepts (:class:`ResponseTooLargeError`)
  or offloads it to S3 and returns a small reference with a presigned URL;
* warns when the invocation ended within a margin of its timeout (:func:`remaining`);
* registers SnapStart hooks when ``snapshot_restore_py`` is importable.

Options are resolved once, when the function is decorated: an argument wins, else the
``LAMBDASLIM_*`` environment variable, else the default.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:  # asyncio costs ~40 ms at cold start: imported only for async handlers
    import asyncio

from . import _coldstart
from ._invocation import Invocation, enter, leave
from ._options import Options, resolve_options
from ._record import finish, logger
from ._response import guard

F = TypeVar("F", bound=Callable[..., Any])


class _Run:
    """The bookkeeping around one call of the wrapped function (shared by sync and async)."""

    __slots__ = ("opts", "inv", "token", "record")

    def __init__(self, opts: Options, context: Any) -> None:
        now = time.monotonic()
        first = _coldstart.STATE.begin(now)
        request_id = getattr(context, "aws_request_id", None) or f"local-{os.getpid()}-{id(self):x}"
        deadline = None
        get_remaining = getattr(context, "get_remaining_time_in_millis", None)
        if get_remaining is not None:
            deadline = now + get_remaining() / 1000.0
        self.opts = opts
        self.inv = inv = Invocation(str(request_id), now, deadline, first)
        self.token = enter(inv)
        self.record: dict[str, Any] = {"request_id": inv.request_id, "cold_start": inv.cold}
        if first:
            from ._scratch import sweep

            try:
                sweep()
            except OSError:
                pass

    def guard(self, result: Any) -> Any:
        """Apply the response guard; return what the runtime should send."""
        return guard(result, self.opts, self.inv, self.record)

    def fail(self, exc: BaseException) -> None:
        self.record["error"] = type(exc).__name__

    def close(self) -> None:
        """Remove scratch, emit the log line and metrics; never masks the handler's outcome."""
        inv = self.inv
        end = time.monotonic()
        leave(inv, self.token)
        record = self.record
        try:
            if inv.scratch_path is not None:
                from ._scratch import remove

                record["scratch_bytes"] = remove(inv.scratch_path)
            finish(self.opts, inv, record, end)
        except Exception:  # observability must never fail the invocation
            logger.exception("lambdaslim: could not finish the invocation record")


_LOOP: asyncio.AbstractEventLoop | None = None


def _event_loop() -> asyncio.AbstractEventLoop:
    """One event loop per process, kept across warm invocations (clients bound to it survive)."""
    import asyncio

    global _LOOP
    if _LOOP is None or _LOOP.is_closed():
        _LOOP = asyncio.new_event_loop()
    return _LOOP


def _wrap(fn: F, opts: Options) -> F:
    if inspect.iscoroutinefunction(fn):

        async def run_async(event: Any, context: Any) -> Any:
            run = _Run(opts, context)
            try:
                return run.guard(await fn(event, context))
            except BaseException as exc:
                run.fail(exc)
                raise
            finally:
                run.close()

        @functools.wraps(fn)
        def async_wrapper(event: Any, context: Any) -> Any:
            import asyncio

            try:
                asyncio.get_running_loop()
            except RuntimeError:
                # Called by the Lambda runtime (no loop running): run to completion.
                return _event_loop().run_until_complete(run_async(event, context))
            return run_async(event, context)  # called from async code: await it

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(event: Any, context: Any) -> Any:
        run = _Run(opts, context)
        try:
            return run.guard(fn(event, context))
        except BaseException as exc:
            run.fail(exc)
            raise
        finally:
            run.close()

    return wrapper  # type: ignore[return-value]


@overload
def handler(fn: F, /) -> F: ...


@overload
def handler(
    fn: None = None,
    /,
    *,
    log: bool | None = None,
    metrics: bool | None = None,
    namespace: str | None = None,
    max_response: int | str | None = None,
    offload: str | None = None,
    offload_expires: int | None = None,
    timeout_margin: float | None = None,
    snapstart: bool | None = None,
) -> Callable[[F], F]: ...


def handler(
    fn: F | None = None,
    /,
    *,
    log: bool | None = None,
    metrics: bool | None = None,
    namespace: str | None = None,
    max_response: int | str | None = None,
    offload: str | None = None,
    offload_expires: int | None = None,
    timeout_margin: float | None = None,
    snapstart: bool | None = None,
) -> F | Callable[[F], F]:
    """Decorate a Lambda handler: ``@lambdaslim.handler`` or ``@lambdaslim.handler(...)``.

    ``log`` (``LAMBDASLIM_LOG``, on): one JSON line per invocation on logger
    ``lambdaslim.handler``. ``metrics`` (``LAMBDASLIM_METRICS``, off): CloudWatch EMF metrics
    in ``namespace`` (``LAMBDASLIM_METRICS_NAMESPACE``, ``lambdaslim``). ``max_response``
    (``LAMBDASLIM_MAX_RESPONSE``, Lambda's 6,291,556 bytes; 0 turns the guard off).
    ``offload`` (``LAMBDASLIM_OFFLOAD``): ``s3://bucket/prefix`` for responses over the limit,
    with presigned URLs valid ``offload_expires`` seconds (``LAMBDASLIM_OFFLOAD_EXPIRES``,
    3600). ``timeout_margin`` (``LAMBDASLIM_TIMEOUT_MARGIN``, 1.0 s): warn when an invocation
    ends closer than this to its timeout. ``snapstart`` (``LAMBDASLIM_SNAPSTART_HOOKS``, on):
    register SnapStart hooks when ``snapshot_restore_py`` is importable.
    """
    opts = resolve_options(
        log=log,
        metrics=metrics,
        namespace=namespace,
        max_response=max_response,
        offload=offload,
        offload_expires=offload_expires,
        timeout_margin=timeout_margin,
        snapstart=snapstart,
    )
    if opts.log and logger.level == logging.NOTSET and logging.getLogger("lambdaslim").level == logging.NOTSET:
        # Lambda's root logger stays at WARNING unless configured: let the INFO line through.
        logger.setLevel(logging.INFO)
    _coldstart.STATE.mark_decorated()
    if opts.snapstart:
        from ._snapstart import register_hooks

        register_hooks()

    def decorate(func: F) -> F:
        return _wrap(func, opts)

    if fn is not None:
        return decorate(fn)
    return decorate
