"""Run a handler under the real Lambda runtime loop on this machine.

The loop is ``awslambdaric`` (the runtime interface client AWS's Python base images run),
driven through the Lambda Runtime API by either

* ``rie`` — the AWS Lambda Runtime Interface Emulator, the static binary shipped inside the
  ``aws-sam-cli`` wheel (``samcli/local/rapid/aws-lambda-rie-<arch>``), run without Docker; or
* ``api`` — a small Runtime API server of ours (``/2018-06-01/runtime/invocation/next``,
  ``/response``, ``/error``, ``/init/error``) on 127.0.0.1, where the emulator is missing.

Both start the runtime process on the first invocation (a cold start, as on Lambda), send one
invocation at a time (the emulator crashes on concurrent ones), restart the runtime after a
timeout, and stop everything they started on :meth:`LocalRuntime.stop`.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

from ._errors import EmulatorError
from ._process import _children, _stop_group, _wait_port, free_port
from ._rie import RUNTIME_CLIENT, find_rie, runtime_dir
from ._runtime_api import _error_dict, _Pending, _RuntimeAPI


class InvokeResult:
    """One invocation's outcome as the caller of Lambda's Invoke API would see it."""

    def __init__(self, body: bytes, error: dict[str, Any] | None, seconds: float, request_id: str | None) -> None:
        self.body = body
        self.error = error
        self.seconds = seconds
        self.request_id = request_id

    @property
    def ok(self) -> bool:
        return self.error is None

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"error={self.error}"
        return f"InvokeResult({state}, {len(self.body)} bytes, {self.seconds * 1000:.1f} ms)"


def invocation_records(logs: str) -> list[dict[str, Any]]:
    """The ``lambdaslim invocation`` records (``@lambdaslim.handler``) in a runtime's output.

    Reads both of the runtime's log formats: text (the record is the JSON after the prefix)
    and ``AWS_LAMBDA_LOG_FORMAT=JSON`` (the record is the line's ``message`` object).
    """
    out: list[dict[str, Any]] = []
    for line in logs.splitlines():
        start = line.find('{"message":"lambdaslim invocation"')
        if start >= 0:
            try:
                out.append(json.loads(line[start:]))
            except ValueError:
                pass
            continue
        if '"lambdaslim invocation"' in line and line.lstrip().startswith("{"):
            try:
                message = json.loads(line).get("message")
            except (ValueError, AttributeError):
                continue
            if isinstance(message, dict) and message.get("message") == "lambdaslim invocation":
                out.append(message)
    return out


# -- our Runtime API server ------------------------------------------------------------------


class LocalRuntime:
    """A handler (``module.function``) served by ``awslambdaric`` under a Runtime API.

    ``task_root`` is the handler's folder (the working directory, first on ``sys.path``);
    ``env`` is added to this process's environment (``LAMBDASLIM_TMP``, layer roots...).
    ``backend`` is ``"rie"``, ``"api"`` or ``"auto"`` (the emulator when found).
    ``python_path``, when given, isolates the runtime as on Lambda: ``python -S`` seeing only
    the task root, these folders (e.g. ``<opt>/python``) and the runtime client, and writing
    bytecode whatever this machine's ``PYTHONDONTWRITEBYTECODE`` says.
    """

    def __init__(
        self,
        handler: str,
        task_root: str,
        *,
        env: dict[str, str] | None = None,
        backend: str = "auto",
        python: str | None = None,
        timeout: float = 30.0,
        memory_mb: int = 512,
        function_name: str = "test_function",
        log_path: str | None = None,
        python_path: list[str] | None = None,
    ) -> None:
        if backend not in ("auto", "rie", "api"):
            raise ValueError(f"backend must be auto, rie or api, not {backend!r}")
        self.rie = find_rie() if backend in ("auto", "rie") else None
        if backend == "rie" and self.rie is None:
            raise EmulatorError("the Runtime Interface Emulator was not found (see lambdaslim.testing._emulator.fetch_rie)")
        self.backend = "rie" if self.rie else "api"
        self.handler = handler
        self.task_root = os.path.abspath(task_root)
        self.python = python or sys.executable
        self.timeout = timeout
        self.function_name = function_name
        self.memory_mb = memory_mb
        self.extra_env = dict(env or {})
        self.python_path = [os.path.abspath(p) for p in python_path] if python_path is not None else None
        self._own_log_dir = None if log_path else tempfile.mkdtemp(prefix="lambdaslim-runtime-")
        self.log_path = log_path or os.path.join(self._own_log_dir or "", "runtime.log")
        self._final_logs: str | None = None
        self._lock = threading.Lock()  # one invocation at a time
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._api: _RuntimeAPI | None = None
        self._api_thread: threading.Thread | None = None
        self._rie_port = 0
        self.invocations = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(max(1, round(self.timeout)))),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": "$LATEST",
                "LAMBDA_TASK_ROOT": self.task_root,
                "_HANDLER": self.handler,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.setdefault("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1"))
        if self.python_path is not None:
            env["PYTHONPATH"] = os.pathsep.join([self.task_root, *self.python_path, runtime_dir()])
            # Lambda's interpreter writes bytecode (/tmp trees are writable): a later process of
            # the same sandbox imports from .pyc. Do not inherit this machine's opposite choice.
            for name in ("PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "PYTHONSTARTUP", "PYTHONUSERBASE"):
                env.pop(name, None)
        env.update(self.extra_env)
        return env

    def _command(self) -> list[str]:
        isolated = ["-S"] if self.python_path is not None else []
        return [self.python, *isolated, "-m", RUNTIME_CLIENT, self.handler]

    def _open_log(self) -> Any:
        if self._log is None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        return self._log

    def start(self) -> LocalRuntime:
        """Start the emulator or our API server (the runtime itself starts on first invoke)."""
        if self.backend == "rie":
            if self._proc is None or self._proc.poll() is not None:
                assert self.rie is not None
                self._rie_port = free_port()
                api_port = free_port()
                self._proc = subprocess.Popen(
                    [self.rie, "--runtime-interface-emulator-address", f"127.0.0.1:{self._rie_port}",
                     "--runtime-api-address", f"127.0.0.1:{api_port}",
                     *self._command()],
                    cwd=self.task_root, env=self._env(), stdin=subprocess.DEVNULL,
                    stdout=self._open_log(), stderr=subprocess.STDOUT, start_new_session=True,
                )
                _wait_port(self._rie_port, self._proc, 10.0)
        elif self._api is None:
            self._api = _RuntimeAPI(f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}")
            self._api_thread = threading.Thread(target=self._api.serve_forever, name="lambdaslim-runtime-api", daemon=True)
            self._api_thread.start()
        return self

    def _start_runtime_process(self) -> None:
        assert self._api is not None
        self._api.init_failed.clear()
        self._api.init_error = None
        env = self._env()
        env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{self._api.server_address[1]}"
        env.setdefault("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        self._proc = subprocess.Popen(
            self._command(),
            cwd=self.task_root, env=env, stdin=subprocess.DEVNULL,
            stdout=self._open_log(), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def stop(self) -> None:
        """Stop the runtime, the emulator and the API server; close the log."""
        if self._api is not None:
            self._api.events.put(None)
        _stop_group(self._proc)
        self._proc = None
        if self._api is not None:
            self._api.shutdown()
            self._api.server_close()
            self._api = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_log_dir is not None:
            self._final_logs = self.logs()
            shutil.rmtree(self._own_log_dir, ignore_errors=True)
            self._own_log_dir = None

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def logs(self) -> str:
        """Everything the runtime (and the emulator) printed so far."""
        if self._final_logs is not None:
            return self._final_logs
        if self._log is not None:
            self._log.flush()
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    @property
    def runtime_pid(self) -> int | None:
        """The pid of the process running ``awslambdaric`` (None before the first invoke)."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        if self.backend == "api":
            return self._proc.pid
        children = _children(self._proc.pid)
        return children[0] if children else None

    # -- invoking ----------------------------------------------------------------------------
    def invoke(self, event: Any = None, *, raw: bytes | None = None) -> InvokeResult:
        """Send one event (JSON-serialised, or ``raw`` bytes) and wait for the outcome."""
        payload = raw if raw is not None else json.dumps(event if event is not None else {}).encode()
        with self._lock:
            self.start()
            self.invocations += 1
            if self.backend == "rie":
                return self._invoke_rie(payload)
            return self._invoke_api(payload)

    def _invoke_rie(self, payload: bytes) -> InvokeResult:
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self._rie_port, timeout=self.timeout + 30)
        try:
            conn.request(
                "POST", "/2015-03-31/functions/function/invocations", payload,
                {"Content-Type": "application/json"},
            )
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        seconds = time.perf_counter() - start
        error: dict[str, Any] | None = None
        if body.startswith(b"Task timed out after"):
            error = {"errorType": "Sandbox.Timedout", "errorMessage": body.decode()}
        elif response.status != 200:
            error = {"errorType": f"HTTP{response.status}", "errorMessage": body.decode("utf-8", "replace")}
        else:
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            if isinstance(data, dict) and "errorType" in data and "errorMessage" in data and (
                set(data) <= {"errorType", "errorMessage", "requestId", "stackTrace"}
            ):
                error = data
        return InvokeResult(body, error, seconds, None)

    def _invoke_api(self, payload: bytes) -> InvokeResult:
        assert self._api is not None
        start = time.perf_counter()
        if self._proc is None or self._proc.poll() is not None:
            self._start_runtime_process()
        request_id = str(uuid.uuid4())
        pending = _Pending(request_id, payload, int(time.time() * 1000 + self.timeout * 1000))
        self._api.pending[request_id] = pending
        self._api.events.put(pending)
        deadline = time.monotonic() + self.timeout
        try:
            while not pending.done.wait(0.05):
                if self._api.init_failed.is_set():
                    _stop_group(self._proc)
                    self._proc = None
                    self._drain_queue()
                    return InvokeResult(b"", self._api.init_error, time.perf_counter() - start, request_id)
                if self._proc is not None and self._proc.poll() is not None:
                    code = self._proc.returncode
                    self._proc = None
                    self._drain_queue()
                    return InvokeResult(
                        b"", {"errorType": "Runtime.ExitError", "errorMessage": f"the runtime exited with code {code}"},
                        time.perf_counter() - start, request_id,
                    )
                if time.monotonic() > deadline:
                    # As Lambda does: kill the runtime; the next invocation is a cold start.
                    _stop_group(self._proc)
                    self._proc = None
                    self._drain_queue()
                    message = f"Task timed out after {self.timeout:.2f} seconds"
                    return InvokeResult(message.encode(), {"errorType": "Sandbox.Timedout", "errorMessage": message},
                                        time.perf_counter() - start, request_id)
        finally:
            self._api.pending.pop(request_id, None)
        return InvokeResult(pending.body, pending.error, time.perf_counter() - start, request_id)

    def _drain_queue(self) -> None:
        assert self._api is not None
        while True:
            try:
                self._api.events.get_nowait()
            except queue.Empty:
                return
