"""The test harness's cache on disk (``LAMBDASLIM_CACHE``): registry installs, tools, layers."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence


def cache_dir() -> str:
    """Where downloaded tools are kept: ``LAMBDASLIM_CACHE`` or ``~/.cache/lambdaslim``."""
    return os.environ.get("LAMBDASLIM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lambdaslim")


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def pip_site(requirements: Sequence[str], *, python: str | None = None, quiet: bool = True) -> str:
    """``pip install --target`` of ``requirements`` (binary wheels only), cached across runs."""
    python = python or sys.executable
    key = _digest(sorted(requirements), python, sys.version if python == sys.executable else "")
    dest = os.path.join(cache_dir(), "sites", key)
    if os.path.isfile(dest + ".complete"):
        return dest
    staging = f"{dest}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    subprocess.run(
        [python, "-m", "pip", "install", *(["--quiet"] if quiet else []), "--disable-pip-version-check",
         "--no-compile", "--only-binary", ":all:", "--target", staging, *requirements],
        check=True,
    )
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(staging, dest)
    with open(dest + ".complete", "w", encoding="ascii") as fh:
        fh.write(" ".join(requirements))
    return dest
