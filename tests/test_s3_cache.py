"""The warm-start caches: max_age hits without requests, 304 revalidation, refetch after an
overwrite, the disk cache inside the storage budget, across threads and processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from typing import Any

import pytest
from s3_helpers import KiB, MiB, RequestLog

from lambdaslim import s3
from lambdaslim.budget import get_budget


def _put(client: Any, bucket: str, data: bytes, key: str | None = None) -> str:
    key = key or f"cache/{uuid.uuid4().hex}"
    client.put_object(Bucket=bucket, Key=key, Body=data)
    return key


@pytest.mark.parametrize("cache", ["memory", "tmp"])
def test_hit_within_max_age_sends_no_request(client: Any, s3_server: Any, cache: str) -> None:
    data = os.urandom(300 * KiB)
    key = _put(client, s3_server.bucket, data)
    log = RequestLog(client)
    first = s3.stream_get(s3_server.bucket, key, client=client, cache=cache, max_age=60)
    assert first.source == "network" and len(log) == 1
    log.clear()
    again = s3.stream_get(s3_server.bucket, key, client=client, cache=cache, max_age=60)
    assert again.read() == data
    assert again.source == cache
    assert len(log) == 0
    assert s3.cache_info()[cache]["hits"] == 1  # type: ignore[literal-required]


@pytest.mark.parametrize("cache", ["memory", "tmp"])
def test_revalidation_304_then_refetch_after_overwrite(client: Any, s3_server: Any, cache: str) -> None:
    key = _put(client, s3_server.bucket, b"version one")
    log = RequestLog(client)
    first = s3.stream_get(s3_server.bucket, key, client=client, cache=cache)
    log.clear()
    second = s3.stream_get(s3_server.bucket, key, client=client, cache=cache)
    assert second.source == "revalidated" and second.read() == b"version one"
    gets = log.gets()
    assert len(log) == 1 and gets[0]["if-none-match"] == first.etag
    assert s3.cache_info()[cache]["revalidated"] == 1  # type: ignore[literal-required]
    _put(client, s3_server.bucket, b"version two, longer", key)
    log.clear()
    third = s3.stream_get(s3_server.bucket, key, client=client, cache=cache)
    assert third.source == "network" and third.read() == b"version two, longer"
    assert third.etag != first.etag and len(log) == 1
    # the new version replaced the old one in the cache
    assert s3.stream_get(s3_server.bucket, key, client=client, cache=cache, max_age=60).read() == b"version two, longer"
    # max_age=0 always asks the server
    log.clear()
    assert s3.stream_get(s3_server.bucket, key, client=client, cache=cache, max_age=0).source == "revalidated"
    assert len(log) == 1


def test_expired_max_age_revalidates(client: Any, s3_server: Any) -> None:
    key = _put(client, s3_server.bucket, b"abc")
    s3.stream_get(s3_server.bucket, key, client=client, max_age=0.2)
    time.sleep(0.3)
    log = RequestLog(client)
    assert s3.stream_get(s3_server.bucket, key, client=client, max_age=0.2).source == "revalidated"
    assert len(log) == 1


def test_cache_off_always_downloads(client: Any, s3_server: Any) -> None:
    key = _put(client, s3_server.bucket, b"abc")
    log = RequestLog(client)
    for _ in range(2):
        assert s3.stream_get(s3_server.bucket, key, client=client, cache=None, max_age=60).source == "network"
    assert len(log) == 2 and "if-none-match" not in log.gets()[1]
    assert s3.cache_info()["memory"]["entries"] == 0


def test_ranges_cached_separately(client: Any, s3_server: Any) -> None:
    data = os.urandom(100 * KiB)
    key = _put(client, s3_server.bucket, data)
    a = s3.stream_get(s3_server.bucket, key, client=client, byte_range=(0, 10), max_age=60)
    b = s3.stream_get(s3_server.bucket, key, client=client, byte_range=(10, 30), max_age=60)
    whole = s3.stream_get(s3_server.bucket, key, client=client, max_age=60)
    assert (a.read(), b.read(), whole.read()) == (data[:10], data[10:30], data)
    assert s3.cache_info()["memory"]["entries"] == 3
    assert s3.stream_get(s3_server.bucket, key, client=client, byte_range=(10, 30), max_age=60).source == "memory"


def test_memory_cache_is_bounded_lru(client: Any, s3_server: Any) -> None:
    keys = [_put(client, s3_server.bucket, os.urandom(100 * KiB)) for _ in range(4)]
    s3.set_memory_cache_limit(250 * KiB)
    try:
        for key in keys[:2]:
            s3.stream_get(s3_server.bucket, key, client=client)
        s3.stream_get(s3_server.bucket, keys[0], client=client, max_age=60)  # keys[0] used last
        s3.stream_get(s3_server.bucket, keys[2], client=client)
        info = s3.cache_info()["memory"]
        assert info["entries"] == 2 and info["bytes"] <= 250 * KiB
        assert s3.stream_get(s3_server.bucket, keys[0], client=client, max_age=60).source == "memory"
        assert s3.stream_get(s3_server.bucket, keys[1], client=client, max_age=60).source == "network"
        big = _put(client, s3_server.bucket, os.urandom(300 * KiB))
        s3.stream_get(s3_server.bucket, big, client=client)  # larger than the whole cache
        assert s3.cache_info()["memory"]["bytes"] <= 250 * KiB
    finally:
        s3.set_memory_cache_limit(512 * 1_000_000)


def test_disk_entries_are_folders_in_the_budget(client: Any, s3_server: Any) -> None:
    data = os.urandom(200 * KiB)
    key = _put(client, s3_server.bucket, data)
    s3.stream_get(s3_server.bucket, key, client=client, cache="tmp")
    folder = get_budget().path("cache", "s3")
    entries = os.listdir(folder)
    assert len(entries) == 1 and not entries[0].startswith(".")
    entry = os.path.join(folder, entries[0])
    with open(os.path.join(entry, "data"), "rb") as fh:
        assert fh.read() == data
    with open(os.path.join(entry, "meta.json")) as fh:
        meta = json.load(fh)
    assert (meta["bucket"], meta["key"], meta["nbytes"]) == (s3_server.bucket, key, len(data))
    assert get_budget().usage()["caches"] >= len(data)
    info = s3.cache_info()["tmp"]
    assert info["entries"] == 1 and info["bytes"] >= len(data) and info["path"] == folder
    # a hit marks the entry as recently used: the budget evicts by the folder's mtime
    os.utime(entry, (1_000_000, 1_000_000))
    assert s3.stream_get(s3_server.bucket, key, client=client, cache="tmp", max_age=60).source == "tmp"
    assert os.stat(entry).st_mtime > time.time() - 60
    s3.clear_cache()
    assert os.listdir(folder) == []


def test_disk_cache_evicted_when_the_budget_needs_room(client: Any, s3_server: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDASLIM_TMP_LIMIT", "3MB")
    keys = [_put(client, s3_server.bucket, os.urandom(900 * KiB)) for _ in range(3)]
    for key in keys:
        s3.stream_get(s3_server.bucket, key, client=client, cache="tmp")
    budget = get_budget()
    assert s3.cache_info()["tmp"]["entries"] == 3
    oldest = os.path.join(budget.path("cache", "s3"), sorted(
        os.listdir(budget.path("cache", "s3")),
        key=lambda n: os.stat(os.path.join(budget.path("cache", "s3"), n)).st_mtime)[0])
    # an extraction asking for room: the least recently used entry goes first
    with budget.reserve("extract numpy", 1_000_000):
        assert not os.path.exists(oldest)
        assert s3.cache_info()["tmp"]["entries"] == 2
    with budget.reserve("extract torch", 2_900_000):
        assert s3.cache_info()["tmp"]["entries"] == 0
    # the evicted object is simply downloaded again
    assert s3.stream_get(s3_server.bucket, keys[0], client=client, cache="tmp", max_age=60).source == "network"


def test_disk_cache_skips_what_does_not_fit(client: Any, s3_server: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDASLIM_TMP_LIMIT", "1MB")
    data = os.urandom(1_200_000)
    key = _put(client, s3_server.bucket, data)
    obj = s3.stream_get(s3_server.bucket, key, client=client, cache="tmp")
    assert obj.read() == data  # the read works; only the caching is skipped
    info = s3.cache_info()["tmp"]
    assert info["entries"] == 0 and info["skipped"] == 1
    folder = get_budget().path("cache", "s3")
    assert not os.path.exists(folder) or os.listdir(folder) == []


_CHILD = textwrap.dedent("""
    import json, sys
    from lambdaslim import s3
    sys.path.insert(0, {tests!r})
    from s3_helpers import KiB, MiB, RequestLog
    from lambdaslim.testing._s3server import S3Server
    server = S3Server.__new__(S3Server)
    server.__dict__.update({server!r})
    client = server.client()
    log = RequestLog(client)
    obj = s3.stream_get({bucket!r}, {key!r}, client=client, cache="tmp", max_age=60)
    print(json.dumps({{"source": obj.source, "requests": len(log), "ok": obj.read() == open({expected!r}, "rb").read()}}))
""")


def _child(s3_server: Any, key: str, expected: str) -> subprocess.Popen[str]:
    server_fields = {k: getattr(s3_server, k) for k in ("endpoint_url", "access_key", "secret_key", "region")}
    code = _CHILD.format(tests=os.path.dirname(__file__), server=server_fields, bucket=s3_server.bucket,
                         key=key, expected=expected)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_disk_cache_survives_a_restart_and_is_shared_by_processes(client: Any, s3_server: Any,
                                                                   tmp_path: Any) -> None:
    data = os.urandom(2 * MiB)
    key = _put(client, s3_server.bucket, data)
    expected = tmp_path / "expected"
    expected.write_bytes(data)
    children = [_child(s3_server, key, str(expected)) for _ in range(3)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    assert all(r["ok"] for r in results)
    # the file lock let one process download; the others waited and read its entry
    assert sorted(r["source"] for r in results) == ["network", "tmp", "tmp"]
    # a new process (a restarted runtime) finds the entry: no request at all
    again = _child(s3_server, key, str(expected))
    out, err = again.communicate(timeout=120)
    assert json.loads(out) == {"source": "tmp", "requests": 0, "ok": True}, err


def test_a_version_is_read_exactly_and_never_revalidated(client: Any, s3_server: Any) -> None:
    bucket = "lambdaslim-versioned"
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key = f"versions/{uuid.uuid4().hex}"
    old = client.put_object(Bucket=bucket, Key=key, Body=b"first version")["VersionId"]
    client.put_object(Bucket=bucket, Key=key, Body=b"second version")
    log = RequestLog(client)
    obj = s3.stream_get(bucket, key, client=client, version_id=old)
    assert obj.read() == b"first version" and obj.version_id == old
    assert log.requests[0][1].endswith(f"versionId={old}")
    log.clear()
    again = s3.stream_get(bucket, key, client=client, version_id=old)  # no max_age: still no request
    assert again.source == "memory" and again.read() == b"first version" and len(log) == 0
    assert s3.stream_get(bucket, key, client=client).read() == b"second version"
    with pytest.raises(s3.S3ObjectNotFoundError):
        s3.stream_get(bucket, key, client=client, version_id="0123456789abcdef0123456789abcdef", cache=None)


def test_staging_of_a_killed_writer_is_invisible_and_swept(client: Any, s3_server: Any) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = get_budget().path("cache", "s3")
    orphan = os.path.join(folder, f".{'0' * 40}.{dead.pid}.1.1")
    os.makedirs(orphan)
    with open(os.path.join(orphan, "data"), "wb") as fh:
        fh.write(b"half written")
    mine = os.path.join(folder, f".{'1' * 40}.{os.getpid()}.1.1")  # a live writer's staging
    os.makedirs(mine)
    assert s3.cache_info()["tmp"]["entries"] == 0  # staging folders are not entries
    assert get_budget().cache_entries() == []  # and the budget never evicts them
    key = _put(client, s3_server.bucket, b"payload")
    s3.stream_get(s3_server.bucket, key, client=client, cache="tmp")  # a write sweeps
    assert not os.path.exists(orphan)
    assert os.path.exists(mine)
    assert s3.cache_info()["tmp"]["entries"] == 1


def test_unusable_disk_cache_does_not_fail_the_read(client: Any, s3_server: Any, tmp_path: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    monkeypatch.setenv("LAMBDASLIM_TMP", str(blocker / "lambdaslim"))  # cannot be created
    key = _put(client, s3_server.bucket, b"payload")
    for _ in range(2):
        obj = s3.stream_get(s3_server.bucket, key, client=client, cache="tmp", max_age=60)
        assert obj.read() == b"payload" and obj.source == "network"
    info = s3.cache_info()["tmp"]
    assert info["skipped"] == 2 and info["entries"] == 0
