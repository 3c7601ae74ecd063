"""Shared fixtures: an isolated extraction root per test, and a real S3 server per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _isolated_root(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing reads /opt or writes /tmp/lambdaslim: each test gets its own roots."""
    layers = tmp_path / "layers"
    layers.mkdir()
    monkeypatch.setenv("LAMBDASLIM_TMP", str(tmp_path / "root"))
    monkeypatch.setenv("LAMBDASLIM_LAYER_ROOTS", str(layers))
    monkeypatch.delenv("LAMBDASLIM_TMP_LIMIT", raising=False)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """A real S3-compatible server on 127.0.0.1 (SeaweedFS, else moto), one per session.

    ``LAMBDASLIM_TEST_S3_BACKEND=moto`` forces the fallback.
    """
    pytest.importorskip("boto3")
    from lambdaslim._s3server import S3Server

    backend = os.environ.get("LAMBDASLIM_TEST_S3_BACKEND", "auto")
    with S3Server(backend=backend) as server:
        yield server
