"""Run code the way Lambda does: a fresh interpreter seeing only the layer's python/ folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULT = "@@RESULT@@"


def lambda_env(opt: Path, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDASLIM_", "PYTHON"))}
    env.update({
        "PYTHONPATH": str(opt / "python"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDASLIM_LAYER_ROOTS": str(opt),
        "LAMBDASLIM_TMP": str(tmp),
    })
    env.update(extra)
    return env


def start(code: str, opt: Path, tmp: Path, **extra: str) -> subprocess.Popen[str]:
    """Start ``code`` in ``python -S`` (no site-packages: only the layer's python/ folder)."""
    prelude = (
        "import json as _json\n"
        f"def report(obj):\n    print({RESULT!r} + _json.dumps(obj), flush=True)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-S", "-c", prelude + code],
        env=lambda_env(opt, tmp, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, Any, str]:
    out, err = proc.communicate(timeout=timeout)
    result = None
    for line in out.splitlines():
        if line.startswith(RESULT):
            result = json.loads(line[len(RESULT):])
    return proc.returncode, result, err


def run(code: str, opt: Path, tmp: Path, **extra: str) -> Any:
    """Run ``code``; it must succeed and call report(obj) once; returns obj."""
    code_, result, err = finish(start(code, opt, tmp, **extra))
    assert code_ == 0, err
    return result
