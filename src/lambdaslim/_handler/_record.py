"""The record of one invocation: timings, cold start, /tmp figures; logged as JSON and as EMF metrics."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from .._runtime._budget import get_budget
from . import _coldstart
from ._invocation import Invocation
from ._options import Options

logger = logging.getLogger("lambdaslim.handler")

# Warm invocations longer than this (seconds) check whether they extracted something.
_LAZY_EXTRACT_CHECK = 0.001
_extraction_seen = [0.0]  # the bootstrap's extraction milliseconds already reported


class _JsonLine(dict):  # type: ignore[type-arg]
    """A log message that is a dict to JSON log formatters and a JSON line to text ones."""

    def __str__(self) -> str:
        return json.dumps(self, separators=(",", ":"), default=str)


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
    finder = getattr(bootstrap, "finder", None)
    cheap = getattr(finder(), "figures", None) if callable(finder) else None
    if cheap is not None:  # status() validates file tables: not once per invocation
        extracted, seconds = cheap()
    else:
        for info in status().values():
            if info.get("state") == "extracted":
                extracted += 1
            seconds += float(info.get("seconds") or 0.0)
    figures: dict[str, Any] = {"extract_ms": round(seconds * 1000, 3), "extracted": extracted}
    imported_at = getattr(bootstrap, "imported_at", None)
    if isinstance(imported_at, float):
        # Process start to ``import lambdaslim.bootstrap``: interpreter and runtime start-up.
        figures["bootstrap_at_ms"] = round(max(0.0, imported_at - _coldstart.STATE.init_start) * 1000, 3)
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


def finish(opts: Options, inv: Invocation, record: dict[str, Any], end: float) -> None:
    """Complete ``record`` for the invocation that ended at ``end``; log it and emit metrics."""
    record["duration_ms"] = round((end - inv.start) * 1000, 3)
    if inv.first:
        record["first_invocation"] = True
        record["init_type"] = _coldstart.STATE.init_type()
        init = _coldstart.STATE.init_seconds()
        if init is not None:
            record["init_ms"] = round(init * 1000, 3)
            record["init_from"] = "restore" if _coldstart.STATE.restored else _coldstart.STATE.init_start_source
        idle = _coldstart.STATE.idle_seconds()
        if idle is not None and not _coldstart.STATE.restored:
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
        if left < opts.timeout_margin:
            logger.warning(
                _JsonLine(
                    message="invocation ended close to its timeout",
                    request_id=inv.request_id,
                    remaining_ms=round(left * 1000),
                    margin_ms=round(opts.timeout_margin * 1000),
                    duration_ms=record["duration_ms"],
                )
            )
    if opts.log and logger.isEnabledFor(logging.INFO):
        # makeRecord + handle: the same record logger.info builds, without the stack
        # walk that looks for the caller (the caller is always this line).
        logger.handle(logger.makeRecord(
            logger.name, logging.INFO, __file__, 0,
            _JsonLine(message="lambdaslim invocation", **record), (), None, "close"))
    if opts.metrics:
        _emit_metrics(opts, record)
