"""The pytest plugin's fixtures, used for real in this session (the plugin is installed)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import lambdaslim
from lambdaslim import testing
from lambdaslim.testing import _tmpfs
from lambdaslim._runtime._budget import get_budget
from lambdaslim.testing.plugin import LambdaContext, LambdaTmp

SRC = str(Path(lambdaslim.__file__).resolve().parents[1])


def _write_until_full(folder: Path, chunk: int = 256 * 1024, cap: int = 50_000_000) -> int:
    written = 0
    with open(folder / "fill.bin", "wb") as fh:
        while written < cap:
            fh.write(b"\0" * chunk)
            fh.flush()
            os.fsync(fh.fileno())
            written += chunk
    return written


def _can_tmpfs() -> bool:
    return _tmpfs.enter_private_namespace() is None


@pytest.mark.lambda_tmp("2MB")
def test_lambda_tmp_tmpfs_refuses_a_write_past_its_size(lambda_tmp: LambdaTmp) -> None:
    if lambda_tmp.mode != "tmpfs":
        pytest.skip(f"no private tmpfs on this machine: {lambda_tmp.reason}")
    assert os.environ["LAMBDASLIM_TMP"] == str(lambda_tmp.root)
    assert "LAMBDASLIM_TMP_LIMIT" not in os.environ
    assert tempfile.gettempdir() == str(lambda_tmp.path)
    st = os.statvfs(lambda_tmp.path)
    assert 2_000_000 <= st.f_blocks * st.f_frsize < 2_100_000  # the file system itself is 2 MB
    with pytest.raises(OSError) as info:
        _write_until_full(lambda_tmp.path)
    assert info.value.errno == errno.ENOSPC
    assert lambda_tmp.used() >= 1_900_000
    # The budget sees the same wall, before writing anything.
    (lambda_tmp.path / "fill.bin").unlink()
    with pytest.raises(lambdaslim.StorageBudgetError):
        with get_budget().reserve("too much", 3_000_000):
            pass


@pytest.mark.lambda_tmp("2MB")
def test_lambda_tmp_mount_is_private_and_inherited(lambda_tmp: LambdaTmp) -> None:
    if lambda_tmp.mode != "tmpfs":
        pytest.skip(f"no private tmpfs on this machine: {lambda_tmp.reason}")
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        assert str(lambda_tmp.path) in fh.read()
    with open("/proc/1/mountinfo", encoding="utf-8") as fh:
        assert str(lambda_tmp.path) not in fh.read()  # the machine does not see it
    child = subprocess.run(
        [sys.executable, "-c", f"import os; s = os.statvfs({str(lambda_tmp.path)!r}); print(s.f_blocks * s.f_frsize)"],
        capture_output=True, text=True, check=True,
    )
    assert int(child.stdout) < 2_100_000  # a child process writes into the same tmpfs


@pytest.mark.lambda_tmp("1MB", mode="budget")
def test_lambda_tmp_budget_mode_refuses_a_reservation_past_its_size(lambda_tmp: LambdaTmp) -> None:
    assert lambda_tmp.mode == "budget"
    assert os.environ["LAMBDASLIM_TMP_LIMIT"] == "1000000"
    budget = get_budget()
    assert budget.capacity() == 1_000_000
    with get_budget().reserve("fits", 500_000):
        pass
    with pytest.raises(lambdaslim.StorageBudgetError) as info:
        with budget.reserve("model download", 1_500_000):
            raise AssertionError("must not get here")
    assert info.value.errno == errno.ENOSPC and info.value.limit == 1_000_000
    assert not any(lambda_tmp.root.joinpath("reserve").iterdir())


@pytest.mark.lambda_tmp("3MB")
def test_scratch_lives_in_lambda_tmp(lambda_tmp: LambdaTmp, lambda_context: LambdaContext) -> None:
    @lambdaslim.handler
    def fn(event: Any, context: Any) -> dict[str, Any]:
        folder = lambdaslim.scratch()
        Path(folder, "x").write_bytes(b"1" * 1_000_000)
        return {"folder": folder, "scratch": lambda_tmp.usage()["scratch"]}

    out = fn({}, lambda_context)
    assert out["folder"].startswith(str(lambda_tmp.root))
    assert out["scratch"] >= 1_000_000
    assert lambda_tmp.usage()["scratch"] == 0


def test_lambda_tmp_default_size(lambda_tmp: LambdaTmp) -> None:
    assert lambda_tmp.limit == 512_000_000
    assert lambda_tmp.usage()["limit"] == 512_000_000


def test_lambda_tmp_falls_back_when_threads_run(tmp_path: Path) -> None:
    """A process with threads cannot take a mount namespace: the fixture says so and uses the budget."""
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import threading, time
            import pytest
            import lambdaslim

            # A thread started at import time, before the plugin could enter the namespace.
            threading.Thread(target=time.sleep, args=(10,), daemon=True).start()

            @pytest.mark.lambda_tmp("1MB")
            def test_it(lambda_tmp):
                assert lambda_tmp.mode == "budget"
                assert "threads" in lambda_tmp.reason
                from lambdaslim._runtime._budget import get_budget
                with pytest.raises(lambdaslim.StorageBudgetError):
                    with get_budget().reserve("x", 2_000_000):
                        pass
            """
        )
    )
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert "1 passed" in out.stdout, out.stdout + out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_lambda_tmp_unprivileged_user_namespace() -> None:
    """As a non-root user the tmpfs comes through an unprivileged user namespace."""
    work = Path(tempfile.mkdtemp(prefix="lambdaslim-userns-", dir="/tmp"))  # reachable by nobody
    try:
        script = work / "probe.py"
        script.write_text(
            textwrap.dedent(
                f"""
                import errno, json, os, sys
                sys.path.insert(0, {SRC!r})
                from lambdaslim.testing import _tmpfs
                reason = _tmpfs.enter_private_namespace()
                out = {{"uid": os.getuid(), "reason": reason}}
                if reason is None:
                    d = {str(work / "mnt")!r}
                    _tmpfs.mount_tmpfs(d, 1_000_000)
                    try:
                        with open(os.path.join(d, "f"), "wb") as fh:
                            fh.write(b"x" * 2_000_000)
                    except OSError as exc:
                        out["errno"] = exc.errno
                print(json.dumps(out))
                """
            )
        )
        (work / "mnt").mkdir()
        os.chmod(work, 0o777)
        os.chmod(work / "mnt", 0o777)

        def drop() -> None:
            os.setgid(65534)
            os.setuid(65534)

        done = None
        for python in (sys.executable, "/usr/bin/python3"):
            try:
                done = subprocess.run([python, "-I", str(script)], capture_output=True, text=True, preexec_fn=drop)
            except OSError:
                continue
            if done.returncode == 0:
                break
        if done is None or done.returncode != 0:
            pytest.skip(f"cannot run python as nobody here: {done.stderr[-300:] if done else ''}")
        out = json.loads(done.stdout)
        assert out["uid"] == 65534
        if out["reason"] is not None:
            pytest.skip(f"unprivileged user namespaces are off here: {out['reason']}")
        assert out["errno"] == errno.ENOSPC
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.lambda_timeout(10)
def test_lambda_context(lambda_context: LambdaContext) -> None:
    assert lambda_context.function_name == "test_function"
    assert lambda_context.memory_limit_in_mb == "512"
    assert lambda_context.invoked_function_arn.endswith(":function:test_function")
    assert len(lambda_context.aws_request_id) == 36
    assert lambda_context.log_group_name == "/aws/lambda/test_function"
    assert lambda_context.identity.cognito_identity_id is None
    first = lambda_context.get_remaining_time_in_millis()
    assert 9000 < first <= 10_000
    time.sleep(0.05)
    assert lambda_context.get_remaining_time_in_millis() < first


def test_lambda_env(lambda_env: dict[str, str]) -> None:
    for key in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION", "AWS_EXECUTION_ENV",
                "LAMBDA_TASK_ROOT", "_HANDLER", "AWS_LAMBDA_INITIALIZATION_TYPE"):
        assert os.environ[key] == lambda_env[key]
    assert Path(lambda_env["LAMBDA_TASK_ROOT"]).is_dir()
    assert lambda_env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert "PATH" not in lambda_env and "AWS_ACCESS_KEY_ID" not in lambda_env


HANDLER_APP = '''
import os, time
import lambdaslim

@lambdaslim.handler(timeout_margin=0.2)
def handler(event, context):
    if event.get("fail"):
        raise KeyError("missing thing")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    folder = lambdaslim.scratch()
    open(os.path.join(folder, "out"), "wb").write(b"1" * 1000)
    return {"pid": os.getpid(), "n": event.get("n"), "scratch": folder,
            "remaining_ms": context.get_remaining_time_in_millis()}
'''


def _app(tmp_path: Path) -> Path:
    task = tmp_path / "task"
    task.mkdir()
    (task / "app.py").write_text(HANDLER_APP)
    return task


def _invocation_lines(logs: str) -> list[dict[str, Any]]:
    out = []
    for line in logs.splitlines():
        start = line.find('{"message":"lambdaslim invocation"')
        if start >= 0:
            out.append(json.loads(line[start:]))
    return out


def _runtime_checks(rt: Any, lambda_tmp: LambdaTmp) -> None:
    first = rt.invoke({"n": 1})
    assert first.ok, first
    second = rt.invoke({"n": 2})
    assert second.json()["n"] == 2 and second.json()["pid"] == first.json()["pid"]  # warm: same process
    assert 0 < second.json()["remaining_ms"] <= 3000
    assert not os.path.exists(first.json()["scratch"])
    assert first.json()["scratch"].startswith(str(lambda_tmp.root))
    failed = rt.invoke({"fail": True})
    assert failed.error is not None and failed.error["errorType"] == "KeyError"
    timed_out = rt.invoke({"sleep": 10})
    assert timed_out.error is not None and timed_out.error["errorType"] == "Sandbox.Timedout"
    after = rt.invoke({"n": 3})  # a new process: a cold start again
    assert after.ok and after.json()["pid"] != first.json()["pid"]
    lines = _invocation_lines(rt.logs())
    assert [line["cold_start"] for line in lines] == [True, False, False, True]
    assert lines[2]["error"] == "KeyError"
    assert all(line["tmp"]["limit"] == lambda_tmp.limit for line in lines)
    assert os.listdir(lambda_tmp.root / "scratch") == []  # the killed runtime's folder was swept


@pytest.mark.lambda_tmp("64MB")
@pytest.mark.lambda_timeout(3)
def test_lambda_runtime_api_backend(lambda_runtime: Any, lambda_tmp: LambdaTmp, tmp_path: Path) -> None:
    rt = lambda_runtime("app.handler", _app(tmp_path), backend="api")
    assert rt.backend == "api"
    _runtime_checks(rt, lambda_tmp)


@pytest.mark.slow
@pytest.mark.lambda_tmp("64MB")
@pytest.mark.lambda_timeout(3)
def test_lambda_runtime_emulator_backend(
    lambda_runtime: Any, lambda_tmp: LambdaTmp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rie = testing.find_rie() or testing.fetch_rie()
    monkeypatch.setenv("LAMBDASLIM_RIE", rie)
    rt = lambda_runtime("app.handler", _app(tmp_path), backend="rie")
    assert rt.backend == "rie"
    _runtime_checks(rt, lambda_tmp)
    pid = rt.runtime_pid
    rt.stop()
    assert pid is None or not os.path.exists(f"/proc/{pid}")


def test_runtime_reports_an_init_error(lambda_runtime: Any, tmp_path: Path) -> None:
    task = tmp_path / "task"
    task.mkdir()
    (task / "broken.py").write_text("raise ImportError('no such model')\n")
    rt = lambda_runtime("broken.handler", task, backend="api")
    result = rt.invoke({})
    assert result.error is not None and "no such model" in result.error["errorMessage"]


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_runtime_log_formats_carry_the_invocation_record(
    lambda_runtime: Any, tmp_path: Path, log_format: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Under AWS_LAMBDA_LOG_FORMAT=JSON the runtime nests the record as an object; both parse."""
    from lambdaslim.testing import invocation_records

    rt = lambda_runtime("app.handler", _app(tmp_path), backend="api", env={"AWS_LAMBDA_LOG_FORMAT": log_format})
    assert rt.invoke({"n": 1}).ok and rt.invoke({"n": 2}).ok
    logs = rt.logs()
    if log_format == "JSON":
        assert '"message": {"message": "lambdaslim invocation"' in logs
    records = invocation_records(logs)
    assert [r["cold_start"] for r in records] == [True, False]
    rt.stop()
    time.sleep(0.3)  # the server's threads see the killed runtime's connections close
    assert "Traceback" not in capfd.readouterr().err  # a runtime stopped mid-request is not an error
