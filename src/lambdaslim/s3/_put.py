"""``stream_put``: write bytes or a file object to S3 from memory, without temp files.

Bodies up to ``part_size`` go in one PUT. Larger ones become a multipart upload whose parts
(at least 5 MiB each, S3's minimum) are read from the source one at a time and sent by a few
threads, so memory stays near ``max_concurrency * part_size``. Any error, including an
exception raised by the source while it is read, aborts the upload: S3 keeps no orphaned parts
and the key keeps its previous content.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import IO, Any, Union

from . import _url
from ._cache import disk_cache, memory_cache
from ._client import get_client
from ._errors import translate

MiB = 1 << 20
MIN_PART_SIZE = 5 * MiB
PART_SIZE = 8 * MiB
MAX_PARTS = 10_000
MAX_CONCURRENCY = 4

Data = Union[bytes, bytearray, memoryview, IO[bytes]]


def _chunks(data: Data, part_size: int) -> Iterator[bytes | memoryview]:
    """The body cut into parts; buffers are sliced without copying, files read part by part."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data).cast("B")
        if len(view) <= part_size and isinstance(data, bytes):
            yield data  # one PUT of the caller's own bytes: no copy
            return
        if len(view) == 0:
            yield b""
        for pos in range(0, len(view), part_size):
            yield view[pos : pos + part_size]
        return
    read = getattr(data, "read", None)
    if read is None:
        raise TypeError(f"stream_put needs bytes or a binary file object, not {type(data).__name__}")
    first = True
    while True:
        # a file may return less than asked: gather a full part before sending it
        pieces: list[bytes] = []
        have = 0
        while have < part_size:
            piece = read(part_size - have)
            if not piece:
                break
            if isinstance(piece, str):
                raise TypeError("stream_put needs a binary file object (opened with 'rb')")
            pieces.append(piece)
            have += len(piece)
        chunk = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if not chunk and not first:
            return
        first = False
        yield chunk
        if have < part_size:
            return


def stream_put(
    dest: str,
    data: Data,
    key: str | None = None,
    *,
    client: Any = None,
    content_type: str | None = None,
    metadata: dict[str, str] | None = None,
    part_size: int = PART_SIZE,
    max_concurrency: int = MAX_CONCURRENCY,
    extra_args: dict[str, Any] | None = None,
) -> str:
    """Write ``data`` (bytes-like or a binary file object) to ``s3://bucket/key``; return the ETag.

    ``extra_args`` are passed to ``put_object`` / ``create_multipart_upload`` (e.g.
    ``{"ServerSideEncryption": "AES256"}``). Cached reads of the key are dropped.
    """
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    bucket, key = _url.parse(dest, key)
    if part_size < MIN_PART_SIZE:
        raise ValueError(f"part_size must be at least 5 MiB ({MIN_PART_SIZE}), not {part_size}")
    if isinstance(data, (bytes, bytearray, memoryview)):
        nbytes = memoryview(data).nbytes
        part_size = max(part_size, -(-nbytes // MAX_PARTS))
    client = client if client is not None else get_client()
    args: dict[str, Any] = dict(extra_args or {})
    if content_type is not None:
        args["ContentType"] = content_type
    if metadata is not None:
        args["Metadata"] = metadata
    memory_cache.discard(bucket, key)
    chunks = _chunks(data, part_size)
    first = next(chunks)
    second = next(chunks, None)
    try:
        if second is None:
            body = first if isinstance(first, bytes) else bytes(first)
            response = client.put_object(Bucket=bucket, Key=key, Body=body, **args)
            return str(response["ETag"])
        return _multipart(client, bucket, key, args, first, second, chunks, max_concurrency)
    except ClientError as exc:
        raise translate(exc, bucket, key, "write") from exc
    finally:
        memory_cache.discard(bucket, key)
        disk_cache.discard(bucket, key)


def _multipart(client: Any, bucket: str, key: str, args: dict[str, Any], first: bytes | memoryview,
               second: bytes | memoryview, rest: Iterator[bytes | memoryview], max_concurrency: int) -> str:
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **args)["UploadId"]
    done: dict[int, str] = {}
    lock = threading.Lock()

    def send(number: int, body: bytes | memoryview) -> None:
        response = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id,
                                      PartNumber=number, Body=bytes(body))
        with lock:
            done[number] = str(response["ETag"])

    try:
        with ThreadPoolExecutor(max_workers=max(1, max_concurrency),
                                thread_name_prefix="lambdaslim-s3-put") as pool:
            pending: set[Future[None]] = set()

            def parts() -> Iterator[bytes | memoryview]:
                yield first
                yield second
                yield from rest

            for number, body in enumerate(parts(), start=1):
                if number > MAX_PARTS:
                    raise ValueError(f"more than {MAX_PARTS} parts: use a larger part_size")
                # keep at most max_concurrency parts in memory and in flight
                while len(pending) >= max(1, max_concurrency):
                    finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in finished:
                        future.result()
                pending.add(pool.submit(send, number, body))
            for future in pending:
                future.result()
        parts_list = [{"PartNumber": n, "ETag": done[n]} for n in sorted(done)]
        response = client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts_list})
        return str(response["ETag"])
    except BaseException:
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:  # noqa: BLE001 - keep the original error; S3 lifecycle rules clean up
            pass
        raise
