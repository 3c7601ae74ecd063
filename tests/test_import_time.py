"""Import-time budget: what importing lambdaslim's entry points pulls in at a cold start.

Timings are not asserted (machines are noisy; benchmarks/extract.py prints them); the set
of modules is, since that is what decides the cost.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def _imported(code: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                          capture_output=True, text=True, check=True)
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}


@pytest.mark.parametrize("code, forbidden", [
    ("import lambdaslim", {"typing", "json", "logging", "zstandard", "filelock", "boto3", "botocore"}),
    ("import lambdaslim; lambdaslim.handler", {"asyncio", "boto3", "botocore", "zstandard", "filelock"}),
    ("import lambdaslim.s3", {"boto3", "botocore", "urllib3"}),
])
def test_entry_points_import_nothing_heavy(code: str, forbidden: set[str]) -> None:
    modules = _imported(code) - _imported("pass")  # site and .pth files import things too
    assert not forbidden & modules, f"{code!r} imports {sorted(forbidden & modules)}"
