"""@lambdaslim.handler: cold/warm, options, guards, scratch, async, EMF, SnapStart hooks."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import lambdaslim
import lambdaslim.budget
from lambdaslim import _handler
from lambdaslim._handler import _coldstart, _snapstart
from lambdaslim.testing._localenv import LambdaContext
from lambdaslim._handler._scratch import ScratchError


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fresh extraction root, no layers, a fresh cold-start state, no LAMBDASLIM_* leftovers."""
    for name in list(os.environ):
        if name.startswith("LAMBDASLIM_") or name == "AWS_LAMBDA_INITIALIZATION_TYPE":
            monkeypatch.delenv(name)
    root = tmp_path / "lambdaslim"
    monkeypatch.setenv("LAMBDASLIM_TMP", str(root))
    monkeypatch.setenv("LAMBDASLIM_LAYER_ROOTS", str(tmp_path / "opt"))
    state = _coldstart.ColdStart()
    monkeypatch.setattr(_coldstart, "STATE", state)  # the one place that knows
    return root


def records(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[dict[str, Any]]:
    out = []
    for rec in caplog.records:
        if rec.name == "lambdaslim.handler" and rec.levelno == level:
            out.append(json.loads(rec.getMessage()))
    return out


def test_both_forms_keep_the_function_identity() -> None:
    def plain(event: Any, context: Any) -> Any:
        """Doc of plain."""
        return event

    bare = lambdaslim.handler(plain)
    called = lambdaslim.handler(log=False)(plain)
    for wrapped in (bare, called):
        assert wrapped.__name__ == "plain"
        assert wrapped.__doc__ == "Doc of plain."
        assert wrapped.__wrapped__ is plain  # type: ignore[attr-defined]
        assert wrapped({"x": 1}, LambdaContext()) == {"x": 1}


def test_first_call_is_cold_then_warm(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lambdaslim")

    @lambdaslim.handler
    def fn(event: Any, context: Any) -> Any:
        return {"ok": event["n"]}

    ctx1, ctx2 = LambdaContext(), LambdaContext()
    assert fn({"n": 1}, ctx1) == {"ok": 1}
    assert fn({"n": 2}, ctx2) == {"ok": 2}
    first, second = records(caplog)
    assert first["request_id"] == ctx1.aws_request_id
    assert first["cold_start"] is True and first["first_invocation"] is True
    assert first["init_type"] == "on-demand"
    assert first["init_ms"] > 0 and first["init_from"] in ("process", "import")
    assert first["response_bytes"] == len(b'{"ok": 1}')
    assert second["request_id"] == ctx2.aws_request_id
    assert second["cold_start"] is False and "first_invocation" not in second
    assert "init_ms" not in second
    for rec in (first, second):
        assert rec["duration_ms"] >= 0
        assert rec["tmp"]["limit"] > 0 and rec["tmp"]["used"] >= 0
        assert 0 < rec["remaining_ms"] <= 3000


def test_init_measured_from_process_start() -> None:
    """A fresh interpreter: init covers the imports done before the first call."""
    code = textwrap.dedent(
        """
        import json, logging, os, time
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        time.sleep(0.3)                      # stands for heavy imports at init
        import lambdaslim
        from lambdaslim.testing._localenv import LambdaContext
        got = []
        class Grab(logging.Handler):
            def emit(self, record):
                got.append(json.loads(record.getMessage()))
        logging.getLogger("lambdaslim.handler").addHandler(Grab())
        fn = lambdaslim.handler(lambda e, c: e)
        fn({}, LambdaContext())
        print(json.dumps(got[0]))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    assert rec["cold_start"] is True and rec["init_from"] == "process"
    assert rec["init_ms"] >= 300  # the sleep happened after the process started


@pytest.mark.parametrize("init_type", ["provisioned-concurrency", "snap-start", "lambda-managed-instances"])
def test_pre_initialised_environments_have_no_cold_start(
    init_type: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lambdaslim")
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", init_type)
    fn = lambdaslim.handler(lambda e, c: None)
    fn({}, LambdaContext())
    fn({}, LambdaContext())
    first, second = records(caplog)
    assert first["cold_start"] is False and first["first_invocation"] is True
    assert first["init_type"] == init_type
    assert second["cold_start"] is False


def test_log_option_env_fallback_and_argument_wins(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lambdaslim")
    monkeypatch.setenv("LAMBDASLIM_LOG", "0")
    lambdaslim.handler(lambda e, c: 1)({}, LambdaContext())
    assert records(caplog) == []
    lambdaslim.handler(log=True)(lambda e, c: 1)({}, LambdaContext())
    assert len(records(caplog)) == 1


def test_response_guard_env_and_argument(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lambdaslim")
    monkeypatch.setenv("LAMBDASLIM_MAX_RESPONSE", "1kB")
    big = {"data": "x" * 2000}

    @lambdaslim.handler
    def env_limited(event: Any, context: Any) -> Any:
        return big

    ctx = LambdaContext()
    with pytest.raises(lambdaslim.ResponseTooLargeError) as info:
        env_limited({}, ctx)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, lambdaslim.LambdaslimError)
    assert err.limit == 1000 and err.size == len(json.dumps(big)) and err.request_id == ctx.aws_request_id
    assert "offload" in str(err)
    assert records(caplog)[-1]["error"] == "ResponseTooLargeError"

    arg_limited = lambdaslim.handler(max_response="1MB")(lambda e, c: big)
    assert arg_limited({}, LambdaContext()) == big
    off = lambdaslim.handler(max_response=0)(lambda e, c: {"data": "y" * 5000})
    assert off({}, LambdaContext())["data"] == "y" * 5000


def test_default_limit_is_lambdas_and_bytes_count() -> None:
    at_limit = b"z" * _handler.LAMBDA_RESPONSE_LIMIT
    assert lambdaslim.handler(lambda e, c: at_limit)({}, LambdaContext()) is at_limit
    with pytest.raises(lambdaslim.ResponseTooLargeError) as info:
        lambdaslim.handler(lambda e, c: at_limit + b"!")({}, LambdaContext())
    assert info.value.size == _handler.LAMBDA_RESPONSE_LIMIT + 1


def test_bad_offload_url_is_refused_at_decoration() -> None:
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        lambdaslim.handler(offload="bucket/prefix")
    with pytest.raises(ValueError, match="not a size"):
        lambdaslim.handler(max_response="lots")


def test_remaining_and_timeout_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lambdaslim")
    assert lambdaslim.remaining() == math.inf
    seen: list[float] = []

    @lambdaslim.handler(timeout_margin=5.0)
    def close_call(event: Any, context: Any) -> None:
        seen.append(lambdaslim.remaining())

    close_call({}, LambdaContext(timeout=2.0))
    assert 0 < seen[0] <= 2.0
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert warnings[0]["margin_ms"] == 5000 and warnings[0]["remaining_ms"] <= 2000

    relaxed = lambdaslim.handler(timeout_margin=0.5)(lambda e, c: None)
    relaxed({}, LambdaContext(timeout=60))
    assert len(records(caplog, logging.WARNING)) == 1
    assert lambdaslim.remaining() == math.inf


def test_margin_from_environment(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lambdaslim")
    monkeypatch.setenv("LAMBDASLIM_TIMEOUT_MARGIN", "120")
    lambdaslim.handler(lambda e, c: None)({}, LambdaContext(timeout=60))
    assert len(records(caplog, logging.WARNING)) == 1


def test_scratch_is_counted_and_removed_whatever_happens(isolated: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lambdaslim")
    seen: dict[str, Any] = {}

    @lambdaslim.handler
    def work(event: Any, context: Any) -> int:
        folder = lambdaslim.scratch()
        assert lambdaslim.scratch() == folder  # one folder per invocation
        Path(folder, "data.bin").write_bytes(b"\1" * 200_000)
        seen["folder"] = folder
        seen["usage"] = lambdaslim.budget.usage()["scratch"]
        if event.get("fail"):
            raise RuntimeError("boom")
        return 1

    assert work({}, LambdaContext()) == 1
    assert Path(seen["folder"]).parent == isolated / "scratch"
    assert seen["usage"] >= 200_000
    assert not Path(seen["folder"]).exists()
    assert records(caplog)[-1]["scratch_bytes"] >= 200_000

    with pytest.raises(RuntimeError, match="boom"):
        work({"fail": True}, LambdaContext())
    assert not Path(seen["folder"]).exists()
    assert os.listdir(isolated / "scratch") == []
    assert records(caplog)[-1]["error"] == "RuntimeError"


def test_scratch_outside_an_invocation() -> None:
    with pytest.raises(ScratchError, match="@lambdaslim.handler"):
        lambdaslim.scratch()


def test_scratch_need_checks_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDASLIM_TMP_LIMIT", "1MB")

    @lambdaslim.handler
    def greedy(event: Any, context: Any) -> str:
        return lambdaslim.scratch(need=event["need"])

    assert greedy({"need": "100kB"}, LambdaContext())
    with pytest.raises(lambdaslim.StorageBudgetError) as info:
        greedy({"need": "2MB"}, LambdaContext())
    assert info.value.needed == 2_000_000


def test_scratch_from_a_worker_thread() -> None:
    @lambdaslim.handler
    def threaded(event: Any, context: Any) -> str:
        out: list[str] = []
        worker = threading.Thread(target=lambda: out.append(lambdaslim.scratch()))
        worker.start()
        worker.join()
        assert out[0] == lambdaslim.scratch()
        return out[0]

    folder = threaded({}, LambdaContext())
    assert not os.path.exists(folder)


def test_first_invocation_sweeps_scratch_of_dead_processes(isolated: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = isolated / "scratch" / f"{dead.stdout.strip()}-old-request"
    stale.mkdir(parents=True)
    (stale / "left-behind").write_bytes(b"x" * 1000)
    alive = isolated / "scratch" / f"{os.getppid()}-other-process"
    alive.mkdir()
    fn = lambdaslim.handler(lambda e, c: None)
    fn({}, LambdaContext())
    assert not stale.exists()
    assert alive.exists()


def test_async_handler_runs_under_the_runtime_and_in_async_code(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lambdaslim")

    @lambdaslim.handler
    async def fetch(event: Any, context: Any) -> dict[str, Any]:
        folder = lambdaslim.scratch()
        await asyncio.sleep(0.01)
        return {"n": event["n"], "scratch": folder, "left": lambdaslim.remaining()}

    assert fetch.__name__ == "fetch"
    # As Lambda's runtime calls it: synchronously, no loop running.
    first = fetch({"n": 1}, LambdaContext())
    second = fetch({"n": 2}, LambdaContext())
    assert first["n"] == 1 and second["n"] == 2
    assert not os.path.exists(first["scratch"])

    # From async code: concurrent invocations keep their own scratch and deadline.
    async def both() -> list[dict[str, Any]]:
        return list(
            await asyncio.gather(fetch({"n": 3}, LambdaContext(timeout=100)), fetch({"n": 4}, LambdaContext(timeout=2)))
        )

    a, b = asyncio.run(both())
    assert a["scratch"] != b["scratch"]
    assert a["left"] > 50 and b["left"] <= 2
    recs = records(caplog)
    assert [r["cold_start"] for r in recs] == [True, False, False, False]


def test_async_handler_errors_are_logged_and_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lambdaslim")

    @lambdaslim.handler(max_response=10)
    async def big(event: Any, context: Any) -> str:
        return "x" * 100

    with pytest.raises(lambdaslim.ResponseTooLargeError):
        big({}, LambdaContext())
    assert records(caplog)[-1]["error"] == "ResponseTooLargeError"


def test_emf_metrics_on_stdout(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "my-fn")
    monkeypatch.setenv("LAMBDASLIM_METRICS", "1")
    fn = lambdaslim.handler(namespace="MyApp")(lambda e, c: {"a": 1})
    fn({}, LambdaContext())
    fn({}, LambdaContext())
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(docs) == 2
    first, second = docs
    directive = first["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "MyApp" and directive["Dimensions"] == [["function_name"]]
    names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert names["Duration"] == "Milliseconds" and names["ColdStart"] == "Count"
    assert names["InitDuration"] == "Milliseconds" and names["TmpUsed"] == "Bytes"
    for m in directive["Metrics"]:
        assert isinstance(first[m["Name"]], (int, float))  # every declared metric has a value
    assert first["function_name"] == "my-fn" and first["ColdStart"] == 1 and second["ColdStart"] == 0
    assert "InitDuration" not in second


def test_tmp_figures_follow_the_budget_limit(isolated: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lambdaslim")
    monkeypatch.setenv("LAMBDASLIM_TMP_LIMIT", "50MB")
    entry = isolated / "cache" / "s3" / "model"
    entry.mkdir(parents=True)
    (entry / "blob").write_bytes(b"m" * 3_000_000)
    lambdaslim.handler(lambda e, c: None)({}, LambdaContext())
    tmp = records(caplog)[-1]["tmp"]
    assert tmp["limit"] == 50_000_000
    assert 3_000_000 <= tmp["used"] < 3_200_000
    assert tmp["free"] <= 47_000_000


def test_invocation_without_context_still_works(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lambdaslim")
    assert lambdaslim.handler(lambda e, c: e)({"k": 1}, None) == {"k": 1}
    rec = records(caplog)[-1]
    assert rec["request_id"].startswith("local-") and "remaining_ms" not in rec


def test_snapstart_hooks(isolated: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot_restore_py = pytest.importorskip("snapshot_restore_py")
    caplog.set_level(logging.INFO, logger="lambdaslim")
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    fn = lambdaslim.handler(lambda e, c: None)
    assert _snapstart.register_hooks() is True
    befores = [f for f, _, _ in snapshot_restore_py.get_before_snapshot()]
    afters = [f for f, _, _ in snapshot_restore_py.get_after_restore()]
    assert befores.count(_snapstart.before_snapshot) == 1
    assert afters.count(_snapstart.after_restore) == 1
    fn({}, LambdaContext())  # an invocation before the snapshot (e.g. a priming call)
    _snapstart.before_snapshot()
    _snapstart.after_restore()
    fn({}, LambdaContext())
    before, after = records(caplog)
    assert after["first_invocation"] is True and after["cold_start"] is False
    assert after["init_from"] == "restore"


def test_offload_large_response_to_s3(s3_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    s3 = pytest.importorskip("lambdaslim.s3")
    import urllib.request

    caplog.set_level(logging.INFO, logger="lambdaslim")
    s3.set_client(s3_server.client())
    try:
        big = {"rows": ["r" * 100] * 2000}  # ~210 kB of JSON

        @lambdaslim.handler(max_response="100kB", offload=f"s3://{s3_server.bucket}/responses/", offload_expires=600)
        def fn(event: Any, context: Any) -> Any:
            return big if event.get("big") else {"small": True}

        assert fn({}, LambdaContext()) == {"small": True}
        ctx = LambdaContext()
        ref = fn({"big": True}, ctx)
        body = json.dumps(big).encode()
        assert ref["offloaded"] is True and ref["bytes"] == len(body)
        assert ref["s3_uri"] == f"s3://{s3_server.bucket}/responses/{ctx.aws_request_id}.json"
        assert ref["content_type"] == "application/json" and ref["expires_in"] == 600
        assert len(json.dumps(ref)) < 2000
        with urllib.request.urlopen(ref["url"], timeout=10) as resp:  # the presigned URL works
            assert resp.read() == body
        assert records(caplog)[-1]["offloaded"] == ref["s3_uri"]
    finally:
        s3.set_client(None)


def test_idle_between_init_and_first_call(caplog: pytest.LogCaptureFixture) -> None:
    """Lambda may initialise an environment before any request (proactive initialisation):
    the gap between the end of the init code and the first call shows it."""
    import time

    caplog.set_level(logging.INFO, logger="lambdaslim")
    fn = lambdaslim.handler(lambda e, c: None)
    time.sleep(0.2)  # the environment sits initialised, waiting for a request
    fn({}, LambdaContext())
    fn({}, LambdaContext())
    first, second = records(caplog)
    assert first["idle_before_first_ms"] >= 200
    assert first["init_ms"] >= first["idle_before_first_ms"]
    assert "idle_before_first_ms" not in second
