"""Shared fixtures: real wheels from the registry, installed once per session."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# numpy: compiled, with a vendored numpy.libs; six: pure Python; jaraco.*: a namespace package
# spread over two distributions.
SMALL_STACK = ["numpy", "six", "jaraco.functools", "jaraco.context"]


def _cache_root() -> Path:
    root = Path(os.environ.get("LAMBDASLIM_TEST_CACHE", Path.home() / ".cache" / "lambdaslim-tests"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def pip_target(requirements: list[str], *extra: str) -> Path:
    """``pip install --target`` into a cache folder keyed by the request; reused across runs."""
    key = hashlib.sha256(repr((requirements, extra, sys.version_info[:2])).encode()).hexdigest()[:16]
    dest = _cache_root() / f"site-{key}"
    marker = dest.with_name(dest.name + ".complete")
    if marker.exists():
        return dest
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--only-binary", ":all:", "--target", str(tmp), *extra, *requirements],
        check=True,
    )
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    marker.write_text("")
    return dest


@pytest.fixture(scope="session")
def small_site() -> Path:
    """A site-packages folder with numpy, six and two jaraco namespace portions."""
    return pip_target(SMALL_STACK)


@pytest.fixture(autouse=True)
def _isolated_lambda_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never let a test read the machine's real /opt or /tmp/lambdaslim."""
    monkeypatch.setenv("LAMBDASLIM_LAYER_ROOTS", str(tmp_path / "no-layers"))
    monkeypatch.setenv("LAMBDASLIM_TMP", str(tmp_path / "lambdaslim-tmp"))
    monkeypatch.delenv("LAMBDASLIM_TMP_LIMIT", raising=False)
    monkeypatch.delenv("LAMBDASLIM_EAGER", raising=False)
    monkeypatch.delenv("LAMBDASLIM_CLEANUP", raising=False)



@pytest.fixture
def client(s3_server: Any) -> Iterator[Any]:
    """A boto3 client of the session's S3 server, with lambdaslim.s3's caches and client reset."""
    from lambdaslim import s3

    s3.clear_cache()
    yield s3_server.client()
    s3.clear_cache()
    s3.set_client(None)
