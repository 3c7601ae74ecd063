"""The decorator's options: an argument wins, else the ``LAMBDASLIM_*`` variable, else the default."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .._runtime import _config
from .._size import parse_size

#: Lambda's limit for a synchronous invocation's response payload, in bytes.
LAMBDA_RESPONSE_LIMIT = 6_291_556


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
