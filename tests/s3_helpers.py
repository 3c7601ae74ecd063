"""Helpers for the S3 tests: request recording through botocore events."""

from __future__ import annotations

import threading
from typing import Any

KiB = 1024
MiB = 1024 * 1024


class RequestLog:
    """Every HTTP request a client sends: (method, path, headers) as sent on the wire."""

    def __init__(self, client: Any) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        client.meta.events.register("before-send.s3", self._record)

    def _record(self, request: Any, **_: Any) -> None:
        headers = {k.lower(): (v.decode() if isinstance(v, bytes) else str(v)) for k, v in request.headers.items()}
        with self._lock:
            self.requests.append((request.method, request.url, headers))

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def gets(self) -> list[dict[str, str]]:
        return [h for m, _, h in self.requests if m == "GET"]

    def __len__(self) -> int:
        return len(self.requests)
