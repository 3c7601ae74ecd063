"""The one boto3 S3 client of the process: created on first use, reused by every call.

A client per call costs a credential lookup and a new connection pool each time (seconds on a
cold Lambda); one shared client keeps its TCP connections alive across invocations. boto3 is
imported here, inside functions, so ``import lambdaslim`` never pays for it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

# Connections kept open: enough for the parallel ranged GETs of one read plus other threads.
MAX_POOL_CONNECTIONS = 32

_lock = threading.Lock()
_client: Any = None
_client_pid = 0
_user_client = False


def make_config(**overrides: Any) -> Any:
    """The botocore ``Config`` lambdaslim uses: pooled, kept alive, standard retries."""
    from botocore.config import Config  # type: ignore[import-untyped]

    settings: dict[str, Any] = {
        "max_pool_connections": MAX_POOL_CONNECTIONS,
        "retries": {"max_attempts": 5, "mode": "standard"},
        "connect_timeout": 5,
        "read_timeout": 30,
        "tcp_keepalive": True,
    }
    settings.update(overrides)
    return Config(**settings)


def get_client() -> Any:
    """The process's client: the one given to :func:`set_client`, or a new default one.

    The default client honours the usual AWS settings (``AWS_REGION``, credentials,
    ``AWS_ENDPOINT_URL_S3``...). After a fork the child makes its own (sockets are not shared).
    """
    global _client, _client_pid
    client = _client
    if client is not None and (_user_client or _client_pid == os.getpid()):
        return client
    with _lock:
        if _client is None or (not _user_client and _client_pid != os.getpid()):
            import boto3  # type: ignore[import-untyped]

            session = boto3.session.Session()  # the default session is not thread-safe
            _client = session.client("s3", config=make_config())
            _client_pid = os.getpid()
        return _client


def set_client(client: Any | None) -> None:
    """Use ``client`` (e.g. one with another ``endpoint_url``) for every later call.

    ``None`` goes back to the default client, created again on next use.
    """
    global _client, _client_pid, _user_client
    with _lock:
        _client = client
        _client_pid = os.getpid()
        _user_client = client is not None


def endpoint_of(client: Any) -> str:
    """Which server a client talks to, so caches of different servers never mix."""
    meta = getattr(client, "meta", None)
    return f"{getattr(meta, 'endpoint_url', '')}|{getattr(meta, 'region_name', '')}"
