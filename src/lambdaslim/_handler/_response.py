"""The response guard: measure the response as the runtime will send it; refuse or offload it."""

from __future__ import annotations

import json
import os
from typing import Any

from ._errors import ResponseTooLargeError
from ._invocation import Invocation
from ._options import Options

_PY312_RUNTIMES = frozenset(
    {"AWS_Lambda_python3.12", "AWS_Lambda_python3.13", "AWS_Lambda_python3.14", "AWS_Lambda_python3.15"}
)


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


def guard(result: Any, opts: Options, inv: Invocation, record: dict[str, Any]) -> Any:
    """What the runtime should send for ``result``: itself, or a reference to it in S3.

    Records the response size in ``record``; raises :class:`ResponseTooLargeError` when it is
    over ``opts.max_response`` and no offload prefix is set.
    """
    limit = opts.max_response
    if not limit or result is None:
        return result
    body = _serialise(result)
    if body is None:
        return result
    record["response_bytes"] = len(body)
    if len(body) <= limit:
        return result
    if opts.offload is None:
        raise ResponseTooLargeError(len(body), limit, inv.request_id)
    reference = _offload(body, result, opts, inv)
    record["offloaded"] = reference["s3_uri"]
    return reference
