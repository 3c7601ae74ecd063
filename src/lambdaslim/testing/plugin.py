"""pytest fixtures for Lambda handlers (loaded automatically when lambdaslim is installed).

``lambda_tmp``
    A /tmp of a given size (``@pytest.mark.lambda_tmp("512MB")``, default 512 MB) that the
    bootstrap, the S3 disk cache and scratch folders use (``LAMBDASLIM_TMP`` points into it,
    and ``TMPDIR``/``tempfile`` too). A real tmpfs in a private mount namespace where the
    machine allows it (``mode == "tmpfs"``: a write past the size fails with ENOSPC, as on
    Lambda), else the storage budget enforces the size (``mode == "budget"``:
    ``LAMBDASLIM_TMP_LIMIT``; lambdaslim's own writes are refused with StorageBudgetError).
    ``mode=`` in the marker, or ``LAMBDASLIM_TEST_TMP_MODE``, forces one.
``lambda_context``
    A LambdaContext with the runtime's attributes and a working
    ``get_remaining_time_in_millis()`` (3 s timeout; ``@pytest.mark.lambda_timeout(10)``).
``lambda_env``
    The environment variables Lambda sets, applied for the test (``AWS_LAMBDA_*``,
    ``LAMBDA_TASK_ROOT`` as a fresh folder, ``AWS_EXECUTION_ENV``, ``_HANDLER``...).
``lambda_runtime``
    A factory running a handler under the real runtime loop (``awslambdaric``) behind the
    Runtime Interface Emulator when found, else behind a Runtime API server of ours:
    ``rt = lambda_runtime("app.handler", task_root)``; ``rt.invoke(event)``. Stopped after the
    test.
``lambda_layers``
    ``lambda_layers(["numpy"], "site-dir", "layer.zip")``: an /opt of packed layers built from
    requirement lists, folders or zips, cached for the session (pip installs across runs).
``cold_start``
    Runs a handler in a fresh interpreter under the runtime loop (true cold), then warm calls
    in the same one; returns each call's round trip and the handler's own log record.
``s3_server``
    A real S3-compatible server on 127.0.0.1 with a bucket (``lambdaslim.testing.S3Server``:
    SeaweedFS, else moto's server), one per session. Skips without boto3.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .._runtime._budget import Budget, Usage
from ._localenv import LambdaContext, lambda_environment
from .._size import format_size, parse_size

DEFAULT_TMP = "512MB"

__all__ = ["Call", "ColdStartRun", "LambdaContext", "LambdaLayers", "LambdaTmp"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", 'lambda_tmp(size="512MB", mode="auto"): the size of the lambda_tmp fixture\'s /tmp'
    )
    config.addinivalue_line("markers", "lambda_timeout(seconds): the timeout of lambda_context / lambda_runtime")


def _wanted_mode(marker: pytest.Mark | None) -> str:
    mode = (marker.kwargs.get("mode") if marker else None) or os.environ.get("LAMBDASLIM_TEST_TMP_MODE") or "auto"
    if mode not in ("auto", "tmpfs", "budget"):
        raise pytest.UsageError(f"lambda_tmp mode must be auto, tmpfs or budget, not {mode!r}")
    return str(mode)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Enter the private mount namespace now, while the process has one thread, if needed."""
    for item in session.items:
        if "lambda_tmp" not in getattr(item, "fixturenames", ()):
            continue
        if _wanted_mode(item.get_closest_marker("lambda_tmp")) != "budget":
            from ._tmpfs import enter_private_namespace

            enter_private_namespace()
            return


@dataclass
class LambdaTmp:
    """The /tmp a test runs against."""

    path: Path  #: the folder standing for Lambda's /tmp
    root: Path  #: the extraction root inside it (``LAMBDASLIM_TMP``)
    limit: int  #: its size in bytes
    mode: str  #: ``"tmpfs"`` or ``"budget"``
    reason: str | None = None  #: why a tmpfs could not be used, in budget mode

    def budget(self) -> Budget:
        return Budget(str(self.root), self.limit if self.mode == "budget" else None)

    def usage(self) -> Usage:
        """The storage budget's view: bytes per category, free, and the limit."""
        return self.budget().usage()

    def used(self) -> int:
        """Bytes in use in this /tmp (the file system's count in tmpfs mode)."""
        if self.mode == "tmpfs":
            st = os.statvfs(self.path)
            return (st.f_blocks - st.f_bfree) * st.f_frsize
        usage = self.usage()
        return usage["packages"] + usage["caches"] + usage["scratch"]

    def __str__(self) -> str:
        extra = f" ({self.reason})" if self.reason else ""
        return f"{format_size(self.limit)} /tmp at {self.path} [{self.mode}]{extra}"


@pytest.fixture
def lambda_tmp(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaTmp]:
    """A size-limited /tmp used by the bootstrap, the S3 cache and scratch (see the module doc)."""
    marker = request.node.get_closest_marker("lambda_tmp")
    size_text = (marker.args[0] if marker and marker.args else None) or (
        marker.kwargs.get("size") if marker else None
    ) or DEFAULT_TMP
    limit = parse_size(size_text)
    mode = _wanted_mode(marker)
    path = tmp_path / "lambda-tmp"
    path.mkdir()
    mounted = False
    reason: str | None = None
    if mode != "budget":
        from ._tmpfs import mount_tmpfs

        try:
            mount_tmpfs(str(path), limit)
            mounted = True
        except OSError as exc:
            reason = str(exc.strerror or exc)
            if mode == "tmpfs":
                pytest.fail(f"lambda_tmp: a tmpfs was asked for but cannot be mounted: {reason}")
    tmp = LambdaTmp(path=path, root=path / "lambdaslim", limit=limit, mode="tmpfs" if mounted else "budget",
                    reason=reason)
    monkeypatch.setenv("LAMBDASLIM_TMP", str(tmp.root))
    if mounted:
        monkeypatch.delenv("LAMBDASLIM_TMP_LIMIT", raising=False)
    else:
        monkeypatch.setenv("LAMBDASLIM_TMP_LIMIT", str(limit))
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    try:
        yield tmp
    finally:
        if mounted:
            from ._tmpfs import unmount

            unmount(str(path))
        else:
            shutil.rmtree(path, ignore_errors=True)


def _timeout(request: pytest.FixtureRequest, default: float) -> float:
    marker = request.node.get_closest_marker("lambda_timeout")
    return float(marker.args[0]) if marker and marker.args else default


@pytest.fixture
def lambda_context(request: pytest.FixtureRequest) -> LambdaContext:
    """A LambdaContext whose deadline is the test's start plus the function timeout."""
    return LambdaContext(timeout=_timeout(request, 3.0))


@pytest.fixture
def lambda_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment variables Lambda sets, applied for the duration of the test."""
    task_root = tmp_path / "task"
    task_root.mkdir(exist_ok=True)
    env = lambda_environment(task_root=str(task_root))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def lambda_runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``lambda_runtime(handler, task_root, *, env=None, backend="auto", timeout=...)``.

    Returns a started :class:`lambdaslim.testing._emulator.LocalRuntime`; ``.invoke(event)`` sends
    one event through the real runtime loop. Everything is stopped after the test. Skips the
    test when ``awslambdaric`` is not installed.
    """
    pytest.importorskip("awslambdaric", reason="lambda_runtime needs awslambdaric (pip install awslambdaric)")
    from ._emulator import LocalRuntime

    started: list[LocalRuntime] = []
    default_timeout = _timeout(request, 30.0)

    def start(handler: str, task_root: str | os.PathLike[str], **kwargs: Any) -> LocalRuntime:
        kwargs.setdefault("timeout", default_timeout)
        kwargs.setdefault("log_path", str(tmp_path / f"runtime-{len(started)}.log"))
        runtime = LocalRuntime(handler, os.fspath(task_root), **kwargs)
        started.append(runtime)
        return runtime.start()

    try:
        yield start
    finally:
        for runtime in started:
            runtime.stop()


@dataclass
class LambdaLayers:
    """An /opt built from packed layers (``LAMBDASLIM_LAYER_ROOTS`` points at it)."""

    path: Path  #: the folder standing for /opt
    layers: list[Path]  #: the layer zips, in order

    @property
    def python(self) -> Path:
        """``<opt>/python``: on ``sys.path`` in Lambda (lambdaslim and its runtime live there)."""
        return self.path / "python"


class _LayerCache:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.opts: dict[tuple[Any, ...], LambdaLayers] = {}

    def build(self, sources: tuple[Any, ...], level: int) -> LambdaLayers:
        from ._layers import build_opt, layer_zip_for

        key = (tuple(tuple(s) if isinstance(s, (list, tuple)) else os.fspath(s) for s in sources), level)
        cached = self.opts.get(key)
        if cached is None:
            zips = [Path(layer_zip_for(s, level=level)) for s in sources]
            opt = self.base / f"opt{len(self.opts)}"
            build_opt([str(z) for z in zips], str(opt))
            cached = self.opts[key] = LambdaLayers(path=opt, layers=zips)
        return cached


@pytest.fixture(scope="session")
def _lambdaslim_layer_cache(tmp_path_factory: pytest.TempPathFactory) -> _LayerCache:
    return _LayerCache(tmp_path_factory.mktemp("lambda-layers"))


@pytest.fixture
def lambda_layers(_lambdaslim_layer_cache: _LayerCache, monkeypatch: pytest.MonkeyPatch) -> Callable[..., LambdaLayers]:
    """``lambda_layers(*sources, level=3)``: an /opt of packed layers, cached for the session.

    Each source is a requirement list (``["numpy"]``: installed from the registry with
    ``pip install --target``, cached across runs, then packed), a site-packages folder
    (packed) or a layer zip. ``LAMBDASLIM_LAYER_ROOTS`` points at the /opt for the test.
    """

    def build(*sources: Any, level: int = 3) -> LambdaLayers:
        if not sources:
            raise ValueError("lambda_layers() needs at least one requirement list, folder or layer zip")
        layers = _lambdaslim_layer_cache.build(sources, level)
        monkeypatch.setenv("LAMBDASLIM_LAYER_ROOTS", str(layers.path))
        return layers

    return build


@dataclass
class Call:
    """One invocation seen from outside (``result``) and from inside (``record``)."""

    result: Any  #: the :class:`lambdaslim.testing._emulator.InvokeResult`
    record: dict[str, Any] | None  #: the handler's ``lambdaslim invocation`` log line, if any

    @property
    def seconds(self) -> float:
        """Round-trip time of the invocation as the caller saw it."""
        return float(self.result.seconds)


@dataclass
class ColdStartRun:
    cold: Call
    warm: list[Call]
    runtime: Any  #: the :class:`lambdaslim.testing._emulator.LocalRuntime` (still running)


@pytest.fixture
def cold_start(lambda_runtime: Callable[..., Any]) -> Callable[..., ColdStartRun]:
    """``cold_start(handler, task_root, event=None, *, warm=2, layers=None, events=None, **kw)``.

    Starts a fresh interpreter under the runtime loop (a true cold start: nothing imported,
    nothing cached in the process), sends the first event, then ``warm`` more to the same
    process. With ``layers`` (from ``lambda_layers``) the runtime is isolated as on Lambda:
    it sees only the task root, ``<opt>/python`` and the runtime client. Records come from the
    handler's log lines (decorate it with ``@lambdaslim.handler``).
    """

    def run(handler: str, task_root: str | os.PathLike[str], event: Any = None, *, warm: int = 2,
            layers: LambdaLayers | None = None, events: list[Any] | None = None, **kwargs: Any) -> ColdStartRun:
        if layers is not None:
            kwargs.setdefault("python_path", [str(layers.python)])
        from ._emulator import invocation_records

        runtime = lambda_runtime(handler, task_root, **kwargs)
        sequence = events if events is not None else [event if event is not None else {}] * (1 + warm)
        results = [runtime.invoke(ev) for ev in sequence]
        records = invocation_records(runtime.logs())
        calls = [Call(res, records[i] if i < len(records) else None) for i, res in enumerate(results)]
        return ColdStartRun(cold=calls[0], warm=calls[1:], runtime=runtime)

    return run


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """A real S3-compatible server on 127.0.0.1 (``.endpoint_url``, ``.bucket``, ``.client()``).

    ``LAMBDASLIM_TEST_S3_BACKEND=moto`` forces moto's server instead of SeaweedFS.
    """
    pytest.importorskip("boto3", reason="s3_server needs boto3")
    from ._s3server import S3Server

    backend = os.environ.get("LAMBDASLIM_TEST_S3_BACKEND", "auto")
    with S3Server(backend=backend) as server:
        yield server
