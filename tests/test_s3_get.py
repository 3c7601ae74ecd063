"""stream_get against a real S3 server: exact bytes, ranges, errors, shared client."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import uuid
from typing import Any

import pytest
from s3_helpers import KiB, MiB, RequestLog

from lambdaslim import s3


def _put(client: Any, bucket: str, data: bytes) -> str:
    key = f"obj/{uuid.uuid4().hex}"
    client.put_object(Bucket=bucket, Key=key, Body=data)
    return key


@pytest.mark.parametrize("size", [0, 1, 1000, 256 * KiB])
def test_small_and_empty_objects_exact_in_one_request(client: Any, s3_server: Any, size: int) -> None:
    data = os.urandom(size)
    key = _put(client, s3_server.bucket, data)
    log = RequestLog(client)
    obj = s3.stream_get(f"s3://{s3_server.bucket}/{key}", client=client, cache=None)
    assert obj.read() == data
    assert len(obj) == size == obj.object_size
    assert obj.source == "network"
    # a small object costs one GET (an empty one two: S3 refuses a range on zero bytes)
    if size:
        assert len(log.gets()) == 1
    else:
        assert len(log.gets()) in (1, 2)


def test_large_object_parallel_ranges_pinned_to_etag(client: Any, s3_server: Any) -> None:
    data = os.urandom(3 * MiB + 12345)
    key = _put(client, s3_server.bucket, data)
    log = RequestLog(client)
    obj = s3.stream_get(s3_server.bucket, key, client=client, cache=None, part_size=256 * KiB,
                        max_concurrency=6)
    assert obj.getbuffer() == data
    assert obj.getvalue() == data
    gets = log.gets()
    assert len(gets) == -(-len(data) // (256 * KiB))
    assert "if-match" not in gets[0]
    # every later range is pinned to the first response's ETag
    assert all(h["if-match"] == obj.etag for h in gets[1:])
    starts = sorted(int(h["range"].split("=")[1].split("-")[0]) for h in gets)
    assert starts == list(range(0, len(data), 256 * KiB))


def test_file_protocol(client: Any, s3_server: Any) -> None:
    data = b"line one\nline two\n" + os.urandom(5000) + b"\nlast"
    key = _put(client, s3_server.bucket, data)
    obj = s3.stream_get(s3_server.bucket, key, client=client, cache=None)
    assert isinstance(obj, io.BufferedIOBase)
    assert obj.readable() and obj.seekable() and not obj.writable()
    assert obj.readline() == b"line one\n"
    assert obj.tell() == 9
    assert obj.read(4) == b"line"
    obj.seek(-4, io.SEEK_END)
    assert obj.read() == b"last"
    obj.seek(0)
    buf = bytearray(9)
    assert obj.readinto(buf) == 9 and bytes(buf) == b"line one\n"
    assert obj.getbuffer().readonly
    with pytest.raises(TypeError):
        obj.getbuffer()[0] = 1  # type: ignore[index]
    assert list(obj)[-1] == data.rsplit(b"\n", 1)[1]
    obj.close()
    with pytest.raises(ValueError):
        obj.read()


@pytest.mark.parametrize("part_size", [64 * KiB, 8 * MiB])
def test_byte_ranges_exact(client: Any, s3_server: Any, part_size: int) -> None:
    data = os.urandom(700 * KiB + 3)
    key = _put(client, s3_server.bucket, data)
    for start, stop in [(0, 1), (0, 10), (5, 6), (100, None), (65535, 65537), (1000, 500 * KiB),
                        (len(data) - 5, len(data) + 1000), (0, None), (len(data) - 1, None)]:
        obj = s3.stream_get(s3_server.bucket, key, client=client, byte_range=(start, stop),
                            cache=None, part_size=part_size)
        assert obj.read() == data[start:stop], (start, stop)
        assert obj.object_size == len(data)


def test_range_outside_object_and_bad_ranges(client: Any, s3_server: Any) -> None:
    key = _put(client, s3_server.bucket, b"0123456789")
    with pytest.raises(s3.S3RangeError) as info:
        s3.stream_get(s3_server.bucket, key, client=client, byte_range=(10, None))
    assert isinstance(info.value, ValueError) and info.value.key == key
    for bad in [(-1, 5), (5, 5), (5, 2), ("0", 5)]:
        with pytest.raises(ValueError):
            s3.stream_get(s3_server.bucket, key, client=client, byte_range=bad)  # type: ignore[arg-type]


def test_errors_carry_bucket_and_key(client: Any, s3_server: Any) -> None:
    with pytest.raises(s3.S3ObjectNotFoundError) as missing:
        s3.stream_get(f"s3://{s3_server.bucket}/no/such/key", client=client)
    assert isinstance(missing.value, LookupError)
    assert (missing.value.bucket, missing.value.key) == (s3_server.bucket, "no/such/key")
    with pytest.raises(s3.S3BucketNotFoundError) as nobucket:
        s3.stream_get("s3://lambdaslim-no-such-bucket/k", client=client)
    assert isinstance(nobucket.value, LookupError) and nobucket.value.bucket == "lambdaslim-no-such-bucket"
    key = _put(client, s3_server.bucket, b"secret")
    import boto3

    intruder = boto3.session.Session().client(
        "s3", endpoint_url=s3_server.endpoint_url, aws_access_key_id=s3_server.access_key,
        aws_secret_access_key="wrong-secret", region_name=s3_server.region)
    if s3_server.backend == "moto":
        pytest.skip("moto does not check signatures")
    with pytest.raises(s3.S3AccessDeniedError) as denied:
        s3.stream_get(s3_server.bucket, key, client=intruder)
    assert isinstance(denied.value, PermissionError) and denied.value.key == key


@pytest.mark.parametrize("source,key", [
    ("s3://bucket", None), ("s3://bucket/", None), ("s3:///key", None), ("http://bucket/key", None),
    ("bucket", None), ("bucket", ""), ("s3://bucket/key", "other"), ("bad/bucket", "key"), ("b", "k"),
])
def test_bad_urls(source: str, key: str | None) -> None:
    with pytest.raises(s3.S3URLError) as info:
        s3.stream_get(source, key)
    assert isinstance(info.value, ValueError)


def test_parse_url() -> None:
    assert s3.parse_url("s3://my-bucket/a/b/c.txt") == ("my-bucket", "a/b/c.txt")
    assert s3.parse_url("my-bucket", "a/b") == ("my-bucket", "a/b")
    assert s3.parse_url("s3://my.bucket/ key with spaces ") == ("my.bucket", " key with spaces ")


def test_one_shared_client_created_lazily(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    s3.set_client(None)
    try:
        first = s3.get_client()
        assert s3.get_client() is first
        assert first.meta.endpoint_url == s3_server.endpoint_url
        assert first.meta.config.max_pool_connections >= 10
        key = _put(first, s3_server.bucket, b"via default client")
        assert s3.stream_get(s3_server.bucket, key, cache=None).read() == b"via default client"
        own = s3_server.client()
        s3.set_client(own)
        assert s3.get_client() is own
    finally:
        s3.set_client(None)


def test_threads_share_one_download(client: Any, s3_server: Any) -> None:
    data = os.urandom(600 * KiB)
    key = _put(client, s3_server.bucket, data)
    log = RequestLog(client)
    results: list[bytes] = []
    barrier = threading.Barrier(6)

    def read() -> None:
        barrier.wait()
        results.append(s3.stream_get(s3_server.bucket, key, client=client, max_age=60,
                                     part_size=128 * KiB).read())

    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [data] * 6
    assert s3.cache_info()["memory"]["downloads"] == 1
    assert len(log.gets()) == 5  # the ranges of one download; the other threads hit the cache


def test_import_lambdaslim_does_not_import_boto3() -> None:
    code = ("import sys, lambdaslim, lambdaslim.s3, lambdaslim.budget; "
            "bad = [m for m in ('boto3', 'botocore', 'filelock', 'urllib3') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_libraries_read_it_like_a_file(client: Any, s3_server: Any) -> None:
    import pickle
    import zipfile

    numpy = pytest.importorskip("numpy")
    array = numpy.arange(1000, dtype=numpy.float32).reshape(10, 100)
    raw = io.BytesIO()
    numpy.save(raw, array)
    key = _put(client, s3_server.bucket, raw.getvalue())
    loaded = numpy.load(s3.stream_get(s3_server.bucket, key, client=client, cache=None))
    assert (loaded == array).all()

    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("a.txt", "hello\nworld\n")
        zf.writestr("b.pkl", pickle.dumps({"x": 1}))
    key = _put(client, s3_server.bucket, zipped.getvalue())
    with zipfile.ZipFile(s3.stream_get(s3_server.bucket, key, client=client, cache=None)) as zf:
        assert zf.read("a.txt") == b"hello\nworld\n"
        assert pickle.loads(zf.read("b.pkl")) == {"x": 1}

    key = _put(client, s3_server.bucket, "héllo\nwörld\n".encode())
    text = io.TextIOWrapper(s3.stream_get(s3_server.bucket, key, client=client, cache=None), encoding="utf-8")
    assert text.readlines() == ["héllo\n", "wörld\n"]
