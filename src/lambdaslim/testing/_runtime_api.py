"""A small Lambda Runtime API server on 127.0.0.1, for where the emulator binary is missing.

It serves ``/2018-06-01/runtime/invocation/next``, ``/response``, ``/error`` and
``/init/error`` to one runtime process, one invocation at a time.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Pending:
    def __init__(self, request_id: str, event: bytes, deadline_ms: int) -> None:
        self.request_id = request_id
        self.event = event
        self.deadline_ms = deadline_ms
        self.done = threading.Event()
        self.body = b""
        self.error: dict[str, Any] | None = None


class _RuntimeAPI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, function_arn: str) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeAPIHandler)
        self.function_arn = function_arn
        self.events: queue.Queue[_Pending | None] = queue.Queue()
        self.pending: dict[str, _Pending] = {}
        self.init_error: dict[str, Any] | None = None
        self.init_failed = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A runtime killed mid-request (timeout, stop) resets its connection: not an error."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _RuntimeAPIHandler(BaseHTTPRequestHandler):
    server: _RuntimeAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet server
        pass

    def _reply(self, code: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path != "/2018-06-01/runtime/invocation/next":
            self._reply(404, b'{"errorMessage":"unknown path"}')
            return
        pending = self.server.events.get()
        if pending is None:  # shutting down: leave the runtime blocked, then killed
            self._reply(503)
            return
        self._reply(
            200,
            pending.event,
            {
                "Lambda-Runtime-Aws-Request-Id": pending.request_id,
                "Lambda-Runtime-Deadline-Ms": str(pending.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": self.server.function_arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
            },
        )

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        parts = self.path.split("/")
        # /2018-06-01/runtime/invocation/<id>/response|error, /2018-06-01/runtime/init/error
        if self.path == "/2018-06-01/runtime/init/error":
            self.server.init_error = _error_dict(body)
            self.server.init_failed.set()
            self._reply(202)
            return
        if len(parts) == 6 and parts[3] == "invocation" and parts[5] in ("response", "error"):
            pending = self.server.pending.get(parts[4])
            if pending is None:
                self._reply(400, b'{"errorMessage":"unknown request id"}')
                return
            if parts[5] == "response":
                pending.body = body
            else:
                pending.body = body
                pending.error = _error_dict(body)
            self._reply(202)
            pending.done.set()
            return
        self._reply(404, b'{"errorMessage":"unknown path"}')


def _error_dict(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {"errorType": "Runtime.Unknown", "errorMessage": body.decode("utf-8", "replace")}
    return data if isinstance(data, dict) else {"errorType": "Runtime.Unknown", "errorMessage": str(data)}


# -- the runtime ------------------------------------------------------------------------------
