"""Download one S3 object (or a byte range of it) into memory, fast and exactly.

The first GET asks for the first ``part_size`` bytes; its ``Content-Range`` tells the size
and its ``ETag`` pins the version. A small object is then complete after that one request.
The rest of a large object comes in parallel ranged GETs sent with ``IfMatch`` set to that
ETag, so an overwrite during the read fails the read (:class:`ObjectChangedError`) instead
of mixing two versions. Each range that loses its connection resumes from the byte it had
reached, with bounded retries and backoff; a read either returns every byte or raises.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from http.client import HTTPException
from typing import Any

from ._errors import (
    ObjectChangedError,
    S3Error,
    S3TransferError,
    error_code,
    translate,
)
from . import _plan
from ._buffer import Buffer, MemoryTarget, Target

MiB = 1 << 20
MAX_ATTEMPTS = 5  # consecutive failures of one range without progress before giving up
READ_CHUNK = 1 * MiB
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass
class Fetched:
    """What a download produced: the bytes and what identifies their version."""

    data: Buffer
    etag: str
    object_size: int
    version_id: str | None
    content_type: str | None
    last_modified: datetime | None
    requests: int


class _ShortBody(Exception):
    """The response body ended before its range did (a dropped connection)."""


class _BadResponse(Exception):
    """Response headers that make no sense (a connection cut inside the headers)."""


class _EtagMismatch(_BadResponse):
    """A range came with another ETag: a truncated header, or a server that ignored IfMatch."""


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the connection failed, not that the request was refused."""
    from botocore.exceptions import (  # type: ignore[import-untyped]
        ConnectionError as BotoConnectionError,
    )
    from botocore.exceptions import (  # type: ignore[import-untyped]
        HTTPClientError,
        IncompleteReadError,
        ResponseStreamingError,
    )
    from urllib3.exceptions import HTTPError as Urllib3HTTPError

    return (BotoConnectionError, HTTPClientError, IncompleteReadError, ResponseStreamingError,
            Urllib3HTTPError, HTTPException, OSError, _ShortBody, _BadResponse)


def normalize_range(byte_range: tuple[int, int | None] | None) -> tuple[int, int | None]:
    """``(start, stop)`` with ``stop`` exclusive (like a slice) or None for "to the end"."""
    if byte_range is None:
        return 0, None
    try:
        start, stop = byte_range
    except (TypeError, ValueError):
        raise ValueError(f"byte_range must be (start, stop), not {byte_range!r}") from None
    if not isinstance(start, int) or start < 0:
        raise ValueError(f"byte_range start must be an int >= 0, not {start!r}")
    if stop is not None and (not isinstance(stop, int) or stop <= start):
        raise ValueError(f"byte_range stop must be None or an int > start, not {stop!r}")
    return start, stop


def _parse_content_range(value: str) -> tuple[int, int, int]:
    match = _CONTENT_RANGE.match(value.strip())
    if not match or match.group(3) == "*":
        raise _BadResponse(f"unexpected Content-Range {value!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _backoff(attempt: int) -> float:
    return float(min(2.0, 0.05 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))


class _Download:
    """One download: shared state of the threads filling one buffer."""

    def __init__(self, client: Any, bucket: str, key: str, version_id: str | None,
                 max_attempts: int) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.version_id = version_id
        self.max_attempts = max_attempts
        self.transient = _transient_errors()
        self.failed = threading.Event()
        self.requests = 0
        self._count_lock = threading.Lock()

    def get(self, **params: Any) -> Any:
        """One GetObject; S3 error responses come back as our exception types."""
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        params["Bucket"] = self.bucket
        params["Key"] = self.key
        if self.version_id is not None:
            params["VersionId"] = self.version_id
        with self._count_lock:
            self.requests += 1
        try:
            return self.client.get_object(**params)
        except ClientError as exc:
            code, status = error_code(exc)
            if "IfMatch" in params and (code == "PreconditionFailed" or status == 412):
                raise ObjectChangedError(self.bucket, self.key, params["IfMatch"]) from None
            raise

    def fill(self, target: Target, base: int, start: int, stop: int, etag: str,
             response: Any = None) -> None:
        """Write object bytes ``[start, stop)`` into ``target`` at ``start - base``.

        ``response`` is an already open GET whose body begins at ``start``. Dropped
        connections resume at the byte reached; ``max_attempts`` failures in a row without
        progress raise :class:`S3TransferError`.
        """
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        pos = start
        failures = 0
        total_attempts = 0
        while pos < stop:
            if self.failed.is_set():
                return
            progress_at = pos
            body = None
            try:
                if response is None:
                    response = self.get(Range=f"bytes={pos}-{stop - 1}", IfMatch=etag)
                    body = response["Body"]
                    response, checked = None, response
                    _check_range(checked, pos, stop, etag)
                else:
                    body = response["Body"]
                    response = None  # a retry asks again
                readinto = _direct_readinto(body)
                while pos < stop:
                    if self.failed.is_set():
                        return
                    want = min(READ_CHUNK, stop - pos)
                    region = target.region(pos - base, want)
                    if readinto is not None:
                        n = readinto(region)
                    else:
                        chunk = body.read(want)
                        n = len(chunk)
                        region[:n] = chunk
                    if not n:
                        raise _ShortBody(f"body ended at byte {pos} of {stop}")
                    target.commit(pos - base, region[:n])
                    pos += n
                if readinto is not None:
                    _release(body)
            except S3Error:
                raise
            except ClientError as exc:
                raise translate(exc, self.bucket, self.key) from exc
            except self.transient as exc:
                total_attempts += 1
                failures = 1 if pos > progress_at else failures + 1
                if failures >= self.max_attempts or total_attempts >= self.max_attempts * 20:
                    if isinstance(exc, _EtagMismatch):
                        raise ObjectChangedError(self.bucket, self.key, etag) from exc
                    raise S3TransferError(
                        f"s3://{self.bucket}/{self.key}: connection failed {failures} times in a row "
                        f"at byte {pos} ({exc.__class__.__name__}: {exc})",
                        self.bucket, self.key, total_attempts, pos - start, stop - start) from exc
                time.sleep(_backoff(failures))
            finally:
                if body is not None and pos < stop:
                    _close_quietly(body)


def _check_range(response: Any, start: int, stop: int, etag: str) -> None:
    """Refuse a range response whose headers do not describe ``[start, stop)`` of ``etag``."""
    first, last, _ = _parse_content_range(str(response.get("ContentRange", "")))
    if first != start or last != stop - 1 or int(response.get("ContentLength", -1)) != stop - start:
        raise _BadResponse(f"asked for bytes {start}-{stop - 1}, got Content-Range "
                           f"{response.get('ContentRange')!r}, Content-Length {response.get('ContentLength')!r}")
    if response.get("ETag") != etag:
        raise _EtagMismatch(f"range came with ETag {response.get('ETag')!r}, not {etag}")


def _direct_readinto(body: Any) -> Callable[[memoryview], int] | None:
    """``readinto`` of the HTTP response under a plain botocore ``StreamingBody``, or None.

    Reading straight into the destination buffer saves the two copies that
    ``StreamingBody.read`` -> urllib3 make per chunk (a third of the CPU time of a download).
    botocore asks urllib3 for undecoded bytes, so both give the same bytes. Bodies that
    validate a checksum (another class) and unknown layouts keep the ordinary path.
    """
    if type(body).__name__ != "StreamingBody":
        return None
    raw = getattr(body, "_raw_stream", None)
    fp = getattr(raw, "_fp", None)
    readinto = getattr(fp, "readinto", None)
    if readinto is None or not hasattr(raw, "release_conn") or not hasattr(fp, "isclosed"):
        return None
    return readinto  # type: ignore[no-any-return]


def _release(body: Any) -> None:
    """Give the connection back to the pool once its response was read to the end."""
    raw = body._raw_stream
    if raw._fp.isclosed():
        raw.release_conn()
    else:  # bytes left over (cannot happen for a range read whole): do not reuse it
        _close_quietly(body)


def _close_quietly(body: Any) -> None:
    try:
        body.close()
    except Exception:  # noqa: BLE001 - the connection is already broken
        pass


def fetch(
    client: Any,
    bucket: str,
    key: str,
    *,
    version_id: str | None = None,
    byte_range: tuple[int, int | None] | None = None,
    if_none_match: str | None = None,
    if_match: str | None = None,
    part_size: int | None = None,
    max_concurrency: int | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    sink: Callable[[int], Target] | None = None,
) -> Fetched | None:
    """Download the object (or ``byte_range`` of it); None when ``if_none_match`` still holds (304).

    ``part_size``/``max_concurrency`` None: chosen by :mod:`._plan`. ``if_match``: the ETag the
    object must still have (else :class:`ObjectChangedError`). ``sink(size)`` gives where the
    bytes go (default: memory, returned as ``Fetched.data``).
    """
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    if part_size is not None and part_size < 1:
        raise ValueError(f"part_size must be positive, not {part_size}")
    if max_concurrency is not None and max_concurrency < 1:
        raise ValueError(f"max_concurrency must be positive, not {max_concurrency}")
    connections = max_concurrency if max_concurrency is not None else _plan.default_concurrency()
    lo, hi = normalize_range(byte_range)
    first = part_size if part_size is not None else _plan.FIRST_GET
    first_stop = lo + first if hi is None else min(hi, lo + first)
    dl = _Download(client, bucket, key, version_id, max(1, max_attempts))
    params: dict[str, Any] = {"Range": f"bytes={lo}-{first_stop - 1}"}
    if if_none_match is not None:
        params["IfNoneMatch"] = if_none_match
    if if_match is not None:
        params["IfMatch"] = if_match
    # KeyError/ValueError: headers cut short (no Content-Length, a garbled number)
    retryable: tuple[type[BaseException], ...] = (*dl.transient, KeyError, ValueError)
    response = None
    for attempt in range(1, dl.max_attempts + 1):
        try:
            response = dl.get(**params)
            etag = str(response.get("ETag") or "")
            if len(etag) < 2 or not etag.endswith('"'):  # S3 ETags are quoted: this one was cut
                raise _BadResponse(f"response without a whole ETag ({etag!r})")
            status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if status == 206:
                start, end, object_size = _parse_content_range(str(response.get("ContentRange", "")))
                body_stop = end + 1
                if int(response["ContentLength"]) != end + 1 - start or end >= object_size:
                    raise _BadResponse(f"Content-Range {response['ContentRange']!r} disagrees with "
                                       f"Content-Length {response['ContentLength']!r}")
            elif status == 200:  # the whole object (no range asked, or the server ignored it)
                start, object_size = 0, int(response["ContentLength"])
                body_stop = object_size
            else:
                raise _BadResponse(f"unexpected HTTP status {status}")
            break
        except ClientError as exc:
            code, status = error_code(exc)
            if status == 304 or code in ("304", "NotModified"):
                return None
            if (code == "InvalidRange" or status == 416) and byte_range is None and "Range" in params:
                params.pop("Range")  # an empty object has no byte 0: ask for all of it
                continue
            raise translate(exc, bucket, key) from None
        except retryable as exc:
            if response is not None:
                _close_quietly(response["Body"])
                response = None
            if attempt >= dl.max_attempts:
                raise S3TransferError(f"s3://{bucket}/{key}: no usable response after {attempt} attempts "
                                      f"({exc.__class__.__name__}: {exc})", bucket, key, attempt, 0, 0) from exc
            time.sleep(_backoff(attempt))
    if response is None:
        raise S3TransferError(f"s3://{bucket}/{key}: no response", bucket, key, dl.max_attempts, 0, 0)
    if start != lo and not (byte_range is None and start == 0):
        _close_quietly(response["Body"])
        raise S3Error(f"server answered range bytes={lo}- with bytes={start}-", bucket, key)
    stop = object_size if hi is None else min(hi, object_size)
    size = max(0, stop - start)
    body_stop = min(body_stop, stop)
    try:
        target = sink(size) if sink is not None else MemoryTarget(size)
    except BaseException:
        _close_quietly(response["Body"])
        raise
    probed = 0
    if max_concurrency is None and part_size is None and body_stop < stop:
        probed, fast = _plan.time_first_bytes(_direct_readinto(response["Body"]), target,
                                              min(_plan.PROBE_BYTES, body_stop - start), dl.transient)
        if fast:
            connections = min(connections, _plan.fast_link_concurrency())
    step = part_size if part_size is not None else _plan.part_size_for(stop - body_stop, connections)
    tasks: list[tuple[int, int, Any]] = [(start + probed, body_stop, response)]
    tasks += [(p, min(p + step, stop), None) for p in range(body_stop, stop, step)]
    try:
        if len(tasks) == 1:
            dl.fill(target, start, start, body_stop, etag, response)
        else:
            _run_parallel(dl, target, start, etag, tasks, connections)
    except BaseException:
        target.abort()
        raise
    return Fetched(
        data=target.finish(),
        etag=etag,
        object_size=object_size,
        version_id=response.get("VersionId"),
        content_type=response.get("ContentType"),
        last_modified=response.get("LastModified"),
        requests=dl.requests,
    )


def _run_parallel(dl: _Download, target: Target, base: int, etag: str,
                  tasks: list[tuple[int, int, Any]], max_concurrency: int) -> None:
    workers = max(1, min(max_concurrency, len(tasks)))
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambdaslim-s3") as pool:
        futures = [pool.submit(dl.fill, target, base, a, b, etag, resp) for a, b, resp in tasks]
        for future in futures:
            try:
                future.result()
            except BaseException as exc:  # noqa: BLE001 - first error wins, the rest stop early
                dl.failed.set()
                if error is None or (isinstance(error, S3TransferError) and isinstance(exc, ObjectChangedError)):
                    error = exc
    if error is not None:
        # responses never read (tasks cancelled by the failure) still hold a connection
        for _, _, resp in tasks:
            if resp is not None:
                _close_quietly(resp["Body"])
        raise error
