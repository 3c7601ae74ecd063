"""Whole reads hand out the downloaded bytes themselves; memory stays near the object's size;
connections and part sizes follow the object's size and the CPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
from s3_helpers import KiB, MiB, RequestLog

from lambdaslim import s3
from lambdaslim.s3 import _plan


def _put(client: Any, bucket: str, data: bytes) -> str:
    key = f"nocopy/{uuid.uuid4().hex}"
    client.put_object(Bucket=bucket, Key=key, Body=data)
    return key


def test_whole_reads_return_the_downloaded_bytes_without_copy(client: Any, s3_server: Any) -> None:
    data = os.urandom(3 * MiB + 7)
    key = _put(client, s3_server.bucket, data)
    obj = s3.stream_get(s3_server.bucket, key, client=client, cache=None, part_size=256 * KiB,
                        max_concurrency=4)
    whole = obj.read()
    assert type(whole) is bytes and whole == data
    obj.seek(0)
    assert obj.read() is whole  # the same object: no copy per read
    assert obj.getvalue() is whole
    assert obj.getbuffer().obj is whole  # the view is over those bytes too
    obj.seek(10)
    assert obj.read(5) == data[10:15]  # a part is a new (small) bytes object
    buf = bytearray(len(data))
    obj.seek(0)
    assert obj.readinto(buf) == len(data) and buf == data
    assert hash(whole) == hash(data)  # an ordinary, immutable bytes object


def test_memory_cache_and_caller_share_one_copy(client: Any, s3_server: Any) -> None:
    data = os.urandom(2 * MiB)
    key = _put(client, s3_server.bucket, data)
    first = s3.stream_get(s3_server.bucket, key, client=client, max_age=60).read()
    warm = s3.stream_get(s3_server.bucket, key, client=client, max_age=60)
    assert warm.source == "memory"
    assert warm.read() is first
    tmp = s3.stream_get(s3_server.bucket, key, client=client, cache="tmp").read()
    again = s3.stream_get(s3_server.bucket, key, client=client, cache="tmp", max_age=60)
    assert again.source == "tmp" and type(again.read()) is bytes and again.getvalue() == tmp == data


_CHILD = textwrap.dedent("""
    import json, sys
    from lambdaslim import s3
    from lambdaslim.testing._s3server import S3Server
    endpoint, bucket, key, cache = sys.argv[1:5]
    import boto3
    client = boto3.session.Session().client("s3", endpoint_url=endpoint)
    s3.stream_get(bucket, key, client=client, cache=None, byte_range=(0, 10))  # load the modules
    def status(field):
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) * 1024 for l in fh if l.startswith(field))
    base = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset the peak (VmHWM) to the current RSS
    data = s3.stream_get(bucket, key, client=client, cache=None if cache == "none" else cache).read()
    print(json.dumps({"grew": status("VmHWM") - base, "size": len(data)}))
""")


@pytest.mark.parametrize("cache", ["none", "memory"])
def test_peak_memory_of_a_whole_read_is_about_the_object(client: Any, s3_server: Any, cache: str) -> None:
    size = 48 * MiB
    key = _put(client, s3_server.bucket, os.urandom(size))
    env = dict(os.environ, **s3_server.env())
    result = subprocess.run([sys.executable, "-c", _CHILD, s3_server.endpoint_url, s3_server.bucket, key, cache],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["size"] == size
    # a second copy (download buffer -> bytes) would be 2x; allow a few MB of connection state
    assert got["grew"] <= 1.15 * size + 6 * MiB, got


def test_small_object_one_get_large_one_part_per_connection(client: Any, s3_server: Any) -> None:
    small = _put(client, s3_server.bucket, os.urandom(_plan.FIRST_GET))
    log = RequestLog(client)
    assert len(s3.stream_get(s3_server.bucket, small, client=client, cache=None)) == _plan.FIRST_GET
    assert len(log.gets()) == 1
    data = os.urandom(_plan.FIRST_GET + 2 * _plan.MIN_PART + 5)
    key = _put(client, s3_server.bucket, data)
    log.clear()
    assert s3.stream_get(s3_server.bucket, key, client=client, cache=None, max_concurrency=3).read() == data
    starts = sorted(int(h["range"].split("=")[1].split("-")[0]) for h in log.gets())
    # the first GET, then the rest cut in one part per other connection, rounded up to whole MiB
    part = _plan.MIN_PART + MiB
    assert starts == [0, _plan.FIRST_GET, _plan.FIRST_GET + part]


def test_plan_follows_cpus_and_size() -> None:
    assert _plan.default_concurrency(1) < _plan.default_concurrency(2) <= _plan.default_concurrency(64)
    assert _plan.default_concurrency(64) == _plan.MAX_AUTO_CONCURRENCY
    assert _plan.part_size_for(1, 10) == _plan.MIN_PART
    assert _plan.part_size_for(10 * _plan.MAX_PART * 9, 10) == _plan.MAX_PART
    assert _plan.part_size_for(90 * MiB, 10) == 10 * MiB
    # the CPUs counted are those the process may run on, not the machine's
    code = ("import os; from lambdaslim.s3 import _plan; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "print(_plan.cpu_count(), _plan.default_concurrency())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", str(_plan.default_concurrency(1))]


@pytest.mark.parametrize("fast", [True, False])
def test_a_fast_first_connection_means_fewer_connections(client: Any, s3_server: Any, fast: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # FAST_LINK 0: every connection counts as fast (the CPU is the limit); inf: never
    monkeypatch.setattr(_plan, "FAST_LINK", 0.0 if fast else float("inf"))
    monkeypatch.setattr(_plan, "cpu_count", lambda: 2)
    data = os.urandom(_plan.FIRST_GET + 3 * _plan.MIN_PART)
    key = _put(client, s3_server.bucket, data)
    log = RequestLog(client)
    assert s3.stream_get(s3_server.bucket, key, client=client, cache=None).read() == data
    rest = len(data) - _plan.FIRST_GET
    connections = _plan.fast_link_concurrency(2) if fast else _plan.default_concurrency(2)
    assert len(log.gets()) == 1 + -(-rest // _plan.part_size_for(rest, connections))
    assert len(log.gets()) == (2 if fast else 4)
