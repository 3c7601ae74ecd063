"""Faults: connections cut mid-body (through a local proxy) and overwrites during a read."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from s3_helpers import KiB, MiB, RequestLog

from lambdaslim import s3
from lambdaslim.testing._proxy import CuttingProxy


@pytest.fixture
def proxy(s3_server: Any) -> Iterator[CuttingProxy]:
    with CuttingProxy.for_url(s3_server.endpoint_url) as p:
        yield p


def _proxied(s3_server: Any, proxy: CuttingProxy) -> Any:
    # botocore must not retry by itself here: every retry seen is lambdaslim's resume
    return s3_server.client(endpoint_url=proxy.url, retries={"max_attempts": 1, "mode": "standard"},
                            read_timeout=10)


def _put(client: Any, bucket: str, data: bytes) -> str:
    key = f"faults/{uuid.uuid4().hex}"
    client.put_object(Bucket=bucket, Key=key, Body=data)
    return key


def _start(header: dict[str, str]) -> int:
    return int(header["range"].split("=")[1].split("-")[0])


def test_cut_mid_body_resumes_from_the_byte_reached(client: Any, s3_server: Any, proxy: CuttingProxy) -> None:
    data = os.urandom(3 * MiB)
    key = _put(client, s3_server.bucket, data)
    via_proxy = _proxied(s3_server, proxy)
    log = RequestLog(via_proxy)
    proxy.cut_after(1 * MiB + 777)  # inside the body of the single GET
    obj = s3.stream_get(s3_server.bucket, key, client=via_proxy, cache=None, part_size=8 * MiB)
    assert obj.read() == data
    assert proxy.cuts == 1
    gets = log.gets()
    assert len(gets) == 2
    resumed_at = _start(gets[1])
    assert 1 * MiB < resumed_at <= 1 * MiB + 777  # from the byte reached, not from zero
    assert gets[1]["if-match"] == obj.etag
    assert proxy.bytes_down < len(data) + 1 * MiB + 777 + 64 * KiB  # nothing fetched twice but headers


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_cuts_during_parallel_ranges(client: Any, s3_server: Any, proxy: CuttingProxy, reset: bool) -> None:
    data = os.urandom(4 * MiB + 99)
    key = _put(client, s3_server.bucket, data)
    via_proxy = _proxied(s3_server, proxy)
    proxy.cut_after(700 * KiB, times=4, reset=reset)
    obj = s3.stream_get(s3_server.bucket, key, client=via_proxy, cache=None, part_size=512 * KiB,
                        max_concurrency=4)
    assert obj.getvalue() == data
    assert proxy.cuts == 4


def test_repeated_cuts_with_progress_still_complete(client: Any, s3_server: Any, proxy: CuttingProxy) -> None:
    data = os.urandom(1 * MiB)
    key = _put(client, s3_server.bucket, data)
    via_proxy = _proxied(s3_server, proxy)
    proxy.cut_each_connection_after(200 * KiB)
    obj = s3.stream_get(s3_server.bucket, key, client=via_proxy, cache=None, max_attempts=3)
    assert obj.read() == data
    assert proxy.cuts >= 5


def test_no_progress_gives_up_without_short_data(client: Any, s3_server: Any, proxy: CuttingProxy) -> None:
    data = os.urandom(1 * MiB)
    key = _put(client, s3_server.bucket, data)
    via_proxy = _proxied(s3_server, proxy)
    s3.stream_get(s3_server.bucket, key, client=via_proxy, cache=None, byte_range=(0, 10))  # connect
    proxy.cut_each_connection_after(100)  # never past the response headers
    with pytest.raises(s3.S3TransferError) as info:
        s3.stream_get(s3_server.bucket, key, client=via_proxy, cache=None, max_attempts=3)
    assert isinstance(info.value, ConnectionError)
    assert info.value.key == key
    proxy.disarm()
    assert s3.stream_get(s3_server.bucket, key, client=via_proxy, cache=None).read() == data


def test_overwrite_during_parallel_read_raises(client: Any, s3_server: Any) -> None:
    key = _put(client, s3_server.bucket, os.urandom(2 * MiB))
    reader = s3_server.client()
    replaced = []

    def overwrite_once(**_: Any) -> None:
        if not replaced:  # right after the first response, before the other ranges are asked
            replaced.append(client.put_object(Bucket=s3_server.bucket, Key=key, Body=os.urandom(2 * MiB)))

    reader.meta.events.register("after-call.s3.GetObject", overwrite_once)
    with pytest.raises(s3.ObjectChangedError) as info:
        s3.stream_get(s3_server.bucket, key, client=reader, part_size=256 * KiB, max_concurrency=4)
    assert (info.value.bucket, info.value.key) == (s3_server.bucket, key)
    assert info.value.etag != replaced[0]["ETag"]
    assert s3.cache_info()["memory"]["entries"] == 0  # nothing mixed was cached
    again = s3.stream_get(s3_server.bucket, key, client=reader)
    assert again.etag == replaced[0]["ETag"]
    assert again.read() == client.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()


def test_overwrite_during_resume_of_a_single_get(client: Any, s3_server: Any, proxy: CuttingProxy) -> None:
    key = _put(client, s3_server.bucket, os.urandom(2 * MiB))
    via_proxy = _proxied(s3_server, proxy)
    overwritten = []

    def overwrite_once(**_: Any) -> None:
        if not overwritten:
            overwritten.append(client.put_object(Bucket=s3_server.bucket, Key=key, Body=b"new"))

    via_proxy.meta.events.register("after-call.s3.GetObject", overwrite_once)
    proxy.cut_after(1 * MiB)
    with pytest.raises(s3.ObjectChangedError):
        s3.stream_get(s3_server.bucket, key, client=via_proxy, cache=None)


def test_cuts_anywhere_in_headers_or_body_never_give_wrong_bytes(client: Any, s3_server: Any,
                                                                  proxy: CuttingProxy) -> None:
    data = os.urandom(300 * KiB)
    key = _put(client, s3_server.bucket, data)
    via_proxy = _proxied(s3_server, proxy)
    s3.stream_get(s3_server.bucket, key, client=via_proxy, cache=None, byte_range=(0, 1))  # connect
    before = proxy.bytes_down
    s3.stream_get(s3_server.bucket, key, client=via_proxy, cache=None, byte_range=(0, 100 * KiB))
    first_response = proxy.bytes_down - before  # headers + 100 KiB: the next response starts here
    offsets = list(range(1, 700, 13)) + [5000, 120 * KiB, 250 * KiB]
    offsets += [first_response + k for k in range(1, 700, 29)]  # inside the second range's headers
    for offset in offsets:
        # one cut, in the first response or (sequential ranges) in a later one
        proxy.cut_after(offset)
        obj = s3.stream_get(s3_server.bucket, key, client=via_proxy, cache=None, part_size=100 * KiB,
                            max_concurrency=1)
        assert obj.getvalue() == data, offset
    assert proxy.cuts == len(offsets)


def test_a_server_ignoring_if_match_is_still_caught_by_the_etag(client: Any, s3_server: Any) -> None:
    """Some S3-compatible servers ignore IfMatch: a range from another version is refused
    by its ETag, not stitched in."""
    key = _put(client, s3_server.bucket, os.urandom(1 * MiB))
    reader = s3_server.client()
    calls = []

    def drop_if_match(params: dict[str, Any], **_: Any) -> None:
        params.pop("IfMatch", None)

    def other_version(parsed: dict[str, Any], **_: Any) -> None:
        calls.append(1)
        if len(calls) > 1:  # every range after the first looks like another version
            parsed["ETag"] = '"0123456789abcdef0123456789abcdef"'

    reader.meta.events.register("before-parameter-build.s3.GetObject", drop_if_match)
    reader.meta.events.register("after-call.s3.GetObject", other_version)
    with pytest.raises(s3.ObjectChangedError):
        s3.stream_get(s3_server.bucket, key, client=reader, cache=None, part_size=256 * KiB, max_attempts=2)
