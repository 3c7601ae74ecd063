"""Issue 13 on real wheels from the registry: xgboost + nvidia-nccl-cu12 (GPU libraries left
out, xgboost's NCCL probe sees them absent, over the limit a plan), onnx and numpy (pruning
spares what their entry points and discovery name; verify loads every entry point and names
the step that removed what one needs).

The wheels are installed once into the test cache (tests/conftest.py ``pip_target``); layers
are packed at zstd level 1 (the level does not change what is tested).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import pip_target
from test_build import packed_files

pytestmark = pytest.mark.slow

XGB_PROBE = """
import importlib.util, numpy as np, xgboost
try:
    from nvidia.nccl import lib
except ModuleNotFoundError:
    pass
else:
    raise AssertionError("nvidia.nccl imported")
assert importlib.util.find_spec("nvidia") is None
assert "dmlc_nccl_path" not in xgboost.collective.CommunicatorContext().args
X = np.random.RandomState(0).rand(200, 3); y = (X[:, 0] > 0.5).astype(int)
booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(X, label=y), 5)
assert ((booster.predict(xgboost.DMatrix(X)) > 0.5) == y).mean() > 0.9
"""
ONNX_RUN = """
from onnx.backend.test.case import collect_snippets
from onnx.backend.test.loader import load_model_tests
assert len(collect_snippets()) > 100 and len(load_model_tests(kind="node")) > 1000
"""


def lambdaslim(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDASLIM_")}
    return subprocess.run([sys.executable, "-m", "lambdaslim", *args], capture_output=True,
                          text=True, env=env, stdin=subprocess.DEVNULL, timeout=900)


@pytest.fixture(scope="session")
def xgb_site() -> Path:
    site = pip_target(["xgboost"])
    if not list(site.glob("nvidia_nccl_cu12-*.dist-info")):
        pytest.skip("xgboost did not pull nvidia-nccl-cu12 on this platform")
    return site


@pytest.fixture(scope="session")
def onnx_site() -> Path:
    return pip_target(["onnx"])


def test_xgboost_layer_leaves_out_nccl_and_its_probe_sees_it_absent(xgb_site: Path, tmp_path: Path) -> None:
    out = tmp_path / "xgb.zip"
    proc = lambdaslim("pack", "--from", str(xgb_site), "--level", "1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("no-gpu ")]
    assert line.split()[:2] == ["no-gpu", "nvidia-nccl-cu12"]
    assert line.split()[3] == "MB" and float(line.split()[2]) > 400
    files = packed_files(out)
    assert not any(p.startswith("nvidia/") for p in files)
    assert any(p.startswith("nvidia_nccl_cu12-") and p.endswith("/METADATA") for p in files)
    check = lambdaslim("verify", str(out), "--run", XGB_PROBE)
    assert check.returncode == 0, check.stdout
    lines = check.stdout.splitlines()
    assert any(ln.split()[:2] == ["ok", "--run"] for ln in lines)
    assert any(ln.split()[:4] == ["ok", "entry", "point", "numpy"] and "(pkg_config)" in ln for ln in lines)


def test_keep_gpu_over_the_limit_reports_the_way_under(xgb_site: Path, tmp_path: Path) -> None:
    proc = lambdaslim("pack", "--from", str(xgb_site), "--keep-gpu", "--no-bytecode", "--level", "1",
                      "-o", str(tmp_path / "big.zip"))
    assert proc.returncode == 3, proc.stderr + proc.stdout
    assert "no-gpu" not in proc.stderr
    plan = proc.stderr.split("way under the limit", 1)[1].splitlines()
    rows = [ln.split() for ln in plan[2:] if ln.startswith("  ") and not ln.startswith("  --")]
    assert rows[0][0] == "nvidia-nccl-cu12" and "--stub nvidia-nccl-cu12:" in plan[2]
    assert rows[1][0] == "xgboost" and "--strip: about" in plan[3]
    assert any("smallest way under by stubbing the largest: --stub nvidia-nccl-cu12 " in ln for ln in plan)
    assert any("drop --keep-gpu" in ln for ln in plan)


def test_onnx_and_numpy_keep_what_their_entry_points_name(onnx_site: Path, tmp_path: Path) -> None:
    out = tmp_path / "onnx.zip"
    proc = lambdaslim("pack", "--from", str(onnx_site), "--level", "1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "kept onnx/backend/test/ (" in proc.stdout and "backend-test-tools" in proc.stdout
    assert "kept numpy/_core/lib/pkgconfig/numpy.pc" in proc.stdout
    files = packed_files(out)
    assert "numpy/_core/lib/pkgconfig/numpy.pc" in files
    assert not any(p.startswith("numpy/_core/tests/test_") for p in files)  # tests still pruned
    check = lambdaslim("verify", str(out), "--run", ONNX_RUN)
    assert check.returncode == 0, check.stdout
    assert "entry point backend-test-tools = onnx.backend.test.cmd_tools:main" in check.stdout
    # what the pruning of issue 4 did, forced with --drop: verify names the step and the --keep
    broken = tmp_path / "broken.zip"
    proc = lambdaslim("pack", "--from", str(onnx_site), "--drop", "onnx/backend/test", "--drop",
                      "numpy/_core/lib/pkgconfig", "--level", "1", "-o", str(broken))
    assert proc.returncode == 0, proc.stderr
    check = lambdaslim("verify", str(broken))
    assert check.returncode == 1
    text = check.stdout
    assert "FAILED  entry point backend-test-tools" in text and "FAILED  entry point numpy = numpy._core.lib.pkgconfig" in text
    assert "removed by the drop step (onnx/backend/test/); repack with --keep onnx/backend/test" in text
    assert "removed by the drop step (numpy/_core/lib/pkgconfig/)" in text
    assert text.splitlines()[-1].endswith(", 2 failed")
