"""stream_put: single PUT, multipart from memory, abort on any error."""

from __future__ import annotations

import io
import os
import uuid
from typing import Any

import pytest
from s3_helpers import MiB, RequestLog

from lambdaslim import s3


def _key() -> str:
    return f"put/{uuid.uuid4().hex}"


def _read(client: Any, bucket: str, key: str) -> bytes:
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def _uploads(client: Any, bucket: str, key: str) -> list[Any]:
    listing = client.list_multipart_uploads(Bucket=bucket, Prefix=key)
    return [u for u in listing.get("Uploads", []) if u["Key"] == key]


@pytest.mark.parametrize("data", [b"", b"x", os.urandom(100_000)])
def test_small_put_is_one_request(client: Any, s3_server: Any, data: bytes) -> None:
    key = _key()
    log = RequestLog(client)
    etag = s3.stream_put(f"s3://{s3_server.bucket}/{key}", data, client=client, content_type="application/x-test",
                         metadata={"origin": "lambdaslim"})
    assert [m for m, _, _ in log.requests] == ["PUT"]
    head = client.head_object(Bucket=s3_server.bucket, Key=key)
    assert head["ETag"] == etag and head["ContentType"] == "application/x-test"
    assert head["Metadata"] == {"origin": "lambdaslim"}
    assert _read(client, s3_server.bucket, key) == data


@pytest.mark.parametrize("as_file", [False, True], ids=["bytes", "fileobj"])
def test_multipart_round_trip(client: Any, s3_server: Any, as_file: bool) -> None:
    data = os.urandom(12 * MiB + 333)
    key = _key()
    log = RequestLog(client)
    body: Any = io.BytesIO(data) if as_file else data
    etag = s3.stream_put(s3_server.bucket, body, key, client=client, part_size=5 * MiB, max_concurrency=2)
    assert etag.strip('"').endswith("-3")  # three parts: 5 MiB, 5 MiB, the rest
    parts = [h for m, url, h in log.requests if m == "PUT" and "partNumber=" in url]
    assert len(parts) == 3
    assert _read(client, s3_server.bucket, key) == data
    assert s3.stream_get(s3_server.bucket, key, client=client, cache=None).read() == data
    assert _uploads(client, s3_server.bucket, key) == []


class _Trickle(io.RawIOBase):
    """A file that returns few bytes per read (like a pipe) and may fail after some bytes."""

    def __init__(self, data: bytes, fail_at: int | None = None) -> None:
        self._data = data
        self._pos = 0
        self._fail_at = fail_at

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._fail_at is not None and self._pos >= self._fail_at:
            raise OSError("the source broke")
        size = min(size if size >= 0 else len(self._data), 1_000_000)
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk


def test_short_reads_are_gathered_into_full_parts(client: Any, s3_server: Any) -> None:
    data = os.urandom(11 * MiB)
    key = _key()
    etag = s3.stream_put(s3_server.bucket, _Trickle(data), key, client=client, part_size=5 * MiB)
    assert etag.strip('"').endswith("-3")
    assert _read(client, s3_server.bucket, key) == data


def test_error_in_the_source_aborts_the_upload(client: Any, s3_server: Any) -> None:
    key = _key()
    client.put_object(Bucket=s3_server.bucket, Key=key, Body=b"previous content")
    log = RequestLog(client)
    with pytest.raises(OSError, match="the source broke"):
        s3.stream_put(s3_server.bucket, _Trickle(os.urandom(20 * MiB), fail_at=11 * MiB), key,
                      client=client, part_size=5 * MiB)
    methods = [(m, url) for m, url, _ in log.requests]
    assert any(m == "POST" and "uploads" in url for m, url in methods)  # a multipart upload began
    assert any(m == "DELETE" and "uploadId=" in url for m, url in methods)  # and was aborted
    assert _uploads(client, s3_server.bucket, key) == []
    assert _read(client, s3_server.bucket, key) == b"previous content"


def test_error_from_the_server_aborts_the_upload(client: Any, s3_server: Any) -> None:
    key = _key()
    failing = s3_server.client()
    sent = []

    def refuse_second_part(params: dict[str, Any], **_: Any) -> None:
        sent.append(params["PartNumber"])
        if params["PartNumber"] == 2:
            params["UploadId"] = "no-such-upload"  # the server refuses this part

    failing.meta.events.register("before-parameter-build.s3.UploadPart", refuse_second_part)
    with pytest.raises(s3.S3Error):
        s3.stream_put(s3_server.bucket, os.urandom(11 * MiB), key, client=failing, part_size=5 * MiB,
                      max_concurrency=1)
    assert 2 in sent
    assert _uploads(client, s3_server.bucket, key) == []
    with pytest.raises(client.exceptions.ClientError):
        client.head_object(Bucket=s3_server.bucket, Key=key)


def test_put_errors_and_arguments(client: Any, s3_server: Any) -> None:
    with pytest.raises(s3.S3BucketNotFoundError) as info:
        s3.stream_put("s3://lambdaslim-no-such-bucket/k", b"x", client=client)
    assert info.value.bucket == "lambdaslim-no-such-bucket" and info.value.key == "k"
    with pytest.raises(ValueError):
        s3.stream_put(s3_server.bucket, b"x", "k", client=client, part_size=1 * MiB)
    with pytest.raises(TypeError):
        s3.stream_put(s3_server.bucket, "text is not bytes", "k", client=client)  # type: ignore[arg-type]
    with pytest.raises(s3.S3URLError):
        s3.stream_put("s3://bucket-only", b"x", client=client)


def test_put_drops_cached_reads(client: Any, s3_server: Any) -> None:
    key = _key()
    s3.stream_put(s3_server.bucket, b"one", key, client=client)
    assert s3.stream_get(s3_server.bucket, key, client=client, max_age=3600).read() == b"one"
    s3.stream_get(s3_server.bucket, key, client=client, max_age=3600, cache="tmp")
    s3.stream_put(s3_server.bucket, b"two", key, client=client)
    assert s3.stream_get(s3_server.bucket, key, client=client, max_age=3600).read() == b"two"
    assert s3.stream_get(s3_server.bucket, key, client=client, max_age=3600, cache="tmp").read() == b"two"
