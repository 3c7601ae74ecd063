"""``@lambdaslim.handler``: cold-start and /tmp observability, response and time guards.

Wraps a Lambda handler (plain or ``async def``) and, per invocation:

* tells cold from warm (:mod:`lambdaslim._coldstart`), measures init on the first call
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

import contextvars
import functools
import inspect
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:  # asyncio costs ~40 ms at cold start: imported only for async handlers
    import asyncio

from . import _config
from ._budget import get_budget
from ._coldstart import STATE
from ._errors import LambdaslimError
from ._size import format_size, parse_size

F = TypeVar("F", bound=Callable[..., Any])

#: Lambda's limit for a synchronous invocation's response payload, in bytes.
LAMBDA_RESPONSE_LIMIT = 6_291_556

logger = logging.getLogger("lambdaslim.handler")

_PY312_RUNTIMES = frozenset(
    {"AWS_Lambda_python3.12", "AWS_Lambda_python3.13", "AWS_Lambda_python3.14", "AWS_Lambda_python3.15"}
)


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


@dataclass(frozen=True)
class Options:
    """Resolved settings of one decorated handler."""

    log: bool
    metrics: bool
    namespace: str
    max_response: int
    offload: tuple[str, str] | None
    offload_expires: int
    timeout_margin: float
    snapstart: bool


def _env_float(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name}: not a number of seconds: {text!r}") from None


def _parse_s3_prefix(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or len(url) <= 5:
        raise ValueError(f"offload must look like s3://bucket/prefix, not {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"offload must look like s3://bucket/prefix, not {url!r}")
    return bucket, prefix.strip("/")


def resolve_options(
    *,
    log: bool | None = None,
    metrics: bool | None = None,
    namespace: str | None = None,
    max_response: int | str | None = None,
    offload: str | None = None,
    offload_expires: int | None = None,
    timeout_margin: float | None = None,
    snapstart: bool | None = None,
) -> Options:
    """Arguments first, then ``LAMBDASLIM_*`` variables, then defaults."""
    if max_response is None:
        max_response = os.environ.get("LAMBDASLIM_MAX_RESPONSE", "").strip() or LAMBDA_RESPONSE_LIMIT
    offload_url = offload if offload is not None else (os.environ.get("LAMBDASLIM_OFFLOAD", "").strip() or None)
    return Options(
        log=_config.flag("LAMBDASLIM_LOG", True) if log is None else log,
        metrics=_config.flag("LAMBDASLIM_METRICS", False) if metrics is None else metrics,
        namespace=namespace or os.environ.get("LAMBDASLIM_METRICS_NAMESPACE") or "lambdaslim",
        max_response=parse_size(max_response),
        offload=_parse_s3_prefix(offload_url) if offload_url else None,
        offload_expires=(
            int(_env_float("LAMBDASLIM_OFFLOAD_EXPIRES", 3600)) if offload_expires is None else offload_expires
        ),
        timeout_margin=(
            _env_float("LAMBDASLIM_TIMEOUT_MARGIN", 1.0) if timeout_margin is None else timeout_margin
        ),
        snapstart=_config.flag("LAMBDASLIM_SNAPSTART_HOOKS", True) if snapstart is None else snapstart,
    )


class Invocation:
    """What the wrapper knows about the invocation under way."""

    __slots__ = ("request_id", "start", "deadline", "first", "cold", "scratch_path")

    def __init__(self, request_id: str, start: float, deadline: float | None, first: bool) -> None:
        self.request_id = request_id
        self.start = start
        self.deadline = deadline
        self.first = first
        self.cold = STATE.is_cold(first)
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


class _JsonLine(dict):  # type: ignore[type-arg]
    """A log message that is a dict to JSON log formatters and a JSON line to text ones."""

    def __str__(self) -> str:
        return json.dumps(self, separators=(",", ":"), default=str)


def _json_default(obj: object) -> object:
    import decimal

    if isinstance(obj, decimal.Decimal):
        return float(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# As awslambdaric encodes: non-ASCII kept as UTF-8 on the python3.12+ runtimes, escaped before.
_ENCODER = json.JSONEncoder(
    default=_json_default, ensure_ascii=os.environ.get("AWS_EXECUTION_ENV") not in _PY312_RUNTIMES
)


def _serialise(result: object) -> bytes | None:
    """The response as Lambda's runtime will send it, or None when it cannot be serialised."""
    if isinstance(result, bytes):
        return result
    try:
        text = _ENCODER.encode(result)
    except (TypeError, ValueError):
        return None  # the runtime reports its own marshalling error
    return text.encode("utf-8")


def _offload(body: bytes, result: object, opts: Options, inv: Invocation) -> dict[str, Any]:
    assert opts.offload is not None
    from importlib import import_module

    s3mod: Any = import_module("lambdaslim.s3")  # boto3 only when a response is offloaded

    bucket, prefix = opts.offload
    is_json = not isinstance(result, bytes)
    name = inv.request_id + (".json" if is_json else ".bin")
    key = f"{prefix}/{name}" if prefix else name
    uri = f"s3://{bucket}/{key}"
    content_type = "application/json" if is_json else "application/octet-stream"
    s3mod.stream_put(uri, body, content_type=content_type)
    client = s3mod.get_client()
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=opts.offload_expires
    )
    return {
        "offloaded": True,
        "s3_uri": uri,
        "url": url,
        "bytes": len(body),
        "content_type": content_type,
        "expires_in": opts.offload_expires,
    }


_probe: tuple[tuple[str | None, str | None], Any, str] | None = None


def _tmp_figures() -> dict[str, int]:
    """Bytes used and free in the extraction root's /tmp, and the limit (cheap: one statvfs)."""
    global _probe
    key = (os.environ.get("LAMBDASLIM_TMP"), os.environ.get("LAMBDASLIM_TMP_LIMIT"))
    if _probe is None or _probe[0] != key:
        budget = get_budget()
        probe = budget.root
        while not os.path.isdir(probe) and os.path.dirname(probe) != probe:
            probe = os.path.dirname(probe)  # the root's file system, before the root exists
        _probe = (key, budget, probe)
    budget, probe = _probe[1], _probe[2]
    st = os.statvfs(probe)
    total, fs_free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    explicit = budget.explicit_limit
    if explicit is not None and explicit < total:
        usage = budget.usage()  # a cap on a bigger disk: count what lambdaslim holds
        used = usage["packages"] + usage["caches"] + usage["scratch"] + usage["reserved"]
        return {"used": used, "free": usage["free"], "limit": explicit}
    return {"used": total - fs_free, "free": fs_free, "limit": total}


def _bootstrap_figures() -> dict[str, Any] | None:
    """Extraction figures from ``lambdaslim.bootstrap`` when (and only when) it is imported."""
    bootstrap = sys.modules.get("lambdaslim.bootstrap")
    status = getattr(bootstrap, "status", None)
    if status is None:
        return None
    seconds = 0.0
    extracted = 0
    for info in status().values():
        if info.get("state") == "extracted":
            extracted += 1
        seconds += float(info.get("seconds") or 0.0)
    figures: dict[str, Any] = {"extract_ms": round(seconds * 1000, 3), "extracted": extracted}
    imported_at = getattr(bootstrap, "imported_at", None)
    if isinstance(imported_at, float):
        # Process start to ``import lambdaslim.bootstrap``: interpreter and runtime start-up.
        figures["bootstrap_at_ms"] = round(max(0.0, imported_at - STATE.init_start) * 1000, 3)
    return figures


def _emit_metrics(opts: Options, record: dict[str, Any]) -> None:
    """One CloudWatch Embedded Metric Format document on stdout (no log-line prefix)."""
    values: dict[str, float] = {"Duration": record["duration_ms"], "ColdStart": 1 if record["cold_start"] else 0}
    units = {"Duration": "Milliseconds", "ColdStart": "Count"}
    if "init_ms" in record:
        values["InitDuration"] = record["init_ms"]
        units["InitDuration"] = "Milliseconds"
    if "extract_ms" in record:
        values["ExtractDuration"] = record["extract_ms"]
        units["ExtractDuration"] = "Milliseconds"
    if "tmp" in record:
        values["TmpUsed"] = record["tmp"]["used"]
        units["TmpUsed"] = "Bytes"
    if "response_bytes" in record:
        values["ResponseSize"] = record["response_bytes"]
        units["ResponseSize"] = "Bytes"
    doc: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": opts.namespace,
                    "Dimensions": [["function_name"]],
                    "Metrics": [{"Name": name, "Unit": units[name]} for name in values],
                }
            ],
        },
        "function_name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local"),
        "request_id": record["request_id"],
        **values,
    }
    sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
    sys.stdout.flush()


# Warm invocations longer than this (seconds) check whether they extracted something.
_LAZY_EXTRACT_CHECK = 0.001
_extraction_seen = [0.0]  # the bootstrap's extraction milliseconds already reported


class _Run:
    """The bookkeeping around one call of the wrapped function (shared by sync and async)."""

    __slots__ = ("opts", "inv", "token", "record")

    def __init__(self, opts: Options, context: Any) -> None:
        now = time.monotonic()
        first = STATE.begin(now)
        request_id = getattr(context, "aws_request_id", None) or f"local-{os.getpid()}-{id(self):x}"
        deadline = None
        get_remaining = getattr(context, "get_remaining_time_in_millis", None)
        if get_remaining is not None:
            deadline = now + get_remaining() / 1000.0
        self.opts = opts
        self.inv = inv = Invocation(str(request_id), now, deadline, first)
        self.token = _CURRENT.set(inv)
        _ACTIVE.append(inv)
        self.record: dict[str, Any] = {"request_id": inv.request_id, "cold_start": inv.cold}
        if first:
            from ._scratch import sweep

            try:
                sweep()
            except OSError:
                pass

    def guard(self, result: Any) -> Any:
        """Apply the response guard; return what the runtime should send."""
        limit = self.opts.max_response
        if not limit or result is None:
            return result
        body = _serialise(result)
        if body is None:
            return result
        self.record["response_bytes"] = len(body)
        if len(body) <= limit:
            return result
        if self.opts.offload is None:
            raise ResponseTooLargeError(len(body), limit, self.inv.request_id)
        reference = _offload(body, result, self.opts, self.inv)
        self.record["offloaded"] = reference["s3_uri"]
        return reference

    def fail(self, exc: BaseException) -> None:
        self.record["error"] = type(exc).__name__

    def close(self) -> None:
        """Remove scratch, emit the log line and metrics; never masks the handler's outcome."""
        inv = self.inv
        end = time.monotonic()
        try:
            _ACTIVE.remove(inv)
        except ValueError:
            pass
        try:
            _CURRENT.reset(self.token)
        except ValueError:
            pass  # closed in another context (an async wrapper resumed elsewhere)
        record = self.record
        try:
            if inv.scratch_path is not None:
                from ._scratch import remove

                record["scratch_bytes"] = remove(inv.scratch_path)
            record["duration_ms"] = round((end - inv.start) * 1000, 3)
            if inv.first:
                record["first_invocation"] = True
                record["init_type"] = STATE.init_type()
                init = STATE.init_seconds()
                if init is not None:
                    record["init_ms"] = round(init * 1000, 3)
                    record["init_from"] = "restore" if STATE.restored else STATE.init_start_source
                idle = STATE.idle_seconds()
                if idle is not None and not STATE.restored:
                    record["idle_before_first_ms"] = round(idle * 1000, 3)
                figures = _bootstrap_figures()
                if figures is not None:
                    record.update(figures)
                    _extraction_seen[0] = figures["extract_ms"]
            elif end - inv.start > _LAZY_EXTRACT_CHECK and "lambdaslim.bootstrap" in sys.modules:
                # A slow warm call may have imported a packed package for the first time.
                figures = _bootstrap_figures()
                if figures is not None and figures["extract_ms"] > _extraction_seen[0]:
                    record["extract_ms"] = round(figures["extract_ms"] - _extraction_seen[0], 3)
                    record["extracted"] = figures["extracted"]
                    _extraction_seen[0] = figures["extract_ms"]
            record["tmp"] = _tmp_figures()
            if inv.deadline is not None:
                left = inv.deadline - end
                record["remaining_ms"] = round(left * 1000)
                if left < self.opts.timeout_margin:
                    logger.warning(
                        _JsonLine(
                            message="invocation ended close to its timeout",
                            request_id=inv.request_id,
                            remaining_ms=round(left * 1000),
                            margin_ms=round(self.opts.timeout_margin * 1000),
                            duration_ms=record["duration_ms"],
                        )
                    )
            if self.opts.log and logger.isEnabledFor(logging.INFO):
                # makeRecord + handle: the same record logger.info builds, without the stack
                # walk that looks for the caller (the caller is always this line).
                logger.handle(logger.makeRecord(
                    logger.name, logging.INFO, __file__, 0,
                    _JsonLine(message="lambdaslim invocation", **record), (), None, "close"))
            if self.opts.metrics:
                _emit_metrics(self.opts, record)
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
    STATE.mark_decorated()
    if opts.snapstart:
        from ._snapstart import register_hooks

        register_hooks()

    def decorate(func: F) -> F:
        return _wrap(func, opts)

    if fn is not None:
        return decorate(fn)
    return decorate
