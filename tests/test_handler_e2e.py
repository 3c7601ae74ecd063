"""End to end: a packed numpy layer, the real runtime loop, a size-limited /tmp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lambdaslim import testing
from lambdaslim.testing.plugin import LambdaTmp

APP = '''
import os
import lambdaslim.bootstrap  # installs the import hook over the packed layers in /opt
import lambdaslim
import numpy as np           # extracted into /tmp at this first import

@lambdaslim.handler
def handler(event, context):
    if event.get("lazy"):
        import time
        import six  # packed too: extracted now, on a warm invocation
        time.sleep(0.01)
        return {"six": six.__file__}
    folder = lambdaslim.scratch()
    path = os.path.join(folder, "a.npy")
    np.save(path, np.arange(event["n"], dtype=np.float64))
    return {
        "sum": float(np.load(path).sum()),
        "numpy_file": np.__file__,
        "lambdaslim_file": lambdaslim.__file__,
        "scratch": folder,
        "status": {k: v["state"] for k, v in lambdaslim.bootstrap.status().items()},
    }
'''


@pytest.fixture
def numpy_app(tmp_path: Path) -> Path:
    task = tmp_path / "task"
    task.mkdir()
    (task / "app.py").write_text(APP)
    return task


@pytest.mark.slow
@pytest.mark.lambda_tmp("512MB")
def test_packed_numpy_handler_cold_then_warm_under_the_emulator(
    cold_start: Any, lambda_layers: Any, lambda_tmp: LambdaTmp, numpy_app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDASLIM_RIE", testing.find_rie() or testing.fetch_rie())
    opt = lambda_layers(["numpy", "six"])
    events = [{"n": 1000}, {"n": 1000}, {"n": 1000}, {"lazy": True}]
    run = cold_start("app.handler", numpy_app, events=events, layers=opt, backend="rie")
    assert run.runtime.backend == "rie"
    cold = run.cold
    assert cold.result.ok, (cold.result, run.runtime.logs()[-2000:])
    body = cold.result.json()
    assert body["sum"] == 1000 * 999 / 2
    # numpy came from the layer, extracted into the test's /tmp; lambdaslim from /opt/python.
    assert body["numpy_file"].startswith(str(lambda_tmp.root / "units"))
    assert body["lambdaslim_file"].startswith(str(opt.python))
    assert body["status"]["numpy"] == "extracted"
    assert cold.record is not None
    assert cold.record["cold_start"] is True and cold.record["first_invocation"] is True
    assert cold.record["extracted"] >= 1 and cold.record["extract_ms"] > 0
    assert cold.record["init_ms"] >= cold.record["extract_ms"]
    assert 0 <= cold.record["idle_before_first_ms"] <= cold.record["init_ms"]
    assert cold.record["tmp"]["limit"] == lambda_tmp.limit
    assert cold.record["tmp"]["used"] >= 10_000_000  # numpy's tree is in this /tmp
    assert cold.record["scratch_bytes"] >= 8000

    assert len(run.warm) == 3
    for call in run.warm[:2]:
        assert call.result.ok and call.result.json()["sum"] == body["sum"]
        assert call.record is not None and call.record["cold_start"] is False
        assert "extract_ms" not in call.record and "init_ms" not in call.record
    # A warm invocation that imports another packed distribution reports its extraction.
    lazy = run.warm[2]
    assert lazy.result.ok and lazy.result.json()["six"].startswith(str(lambda_tmp.root / "units"))
    assert lazy.record is not None and lazy.record["cold_start"] is False
    assert lazy.record["extract_ms"] > 0 and lazy.record["extracted"] == cold.record["extracted"] + 1
    # No scratch left in /tmp after any invocation, cold or warm.
    assert os.listdir(lambda_tmp.root / "scratch") == []
    assert not os.path.exists(body["scratch"])


@pytest.mark.slow
def test_snapstart_hooks_extract_before_snapshot_and_repair_after_restore(lambda_layers: Any, tmp_path: Path) -> None:
    opt = lambda_layers(["numpy"])
    root = tmp_path / "tmp-root"
    script = textwrap.dedent(
        f"""
        import json, os
        os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
        import lambdaslim.bootstrap as bootstrap
        import lambdaslim
        from lambdaslim._handler import _snapstart
        from lambdaslim._runtime._budget import MARKER

        fn = lambdaslim.handler(lambda event, context: event)
        out = {{"hooks": _snapstart.register_hooks()}}
        out["before"] = {{k: v["state"] for k, v in bootstrap.status().items()}}
        _snapstart.before_snapshot()
        st = bootstrap.status()
        out["after_snapshot"] = {{k: v["state"] for k, v in st.items()}}
        # The restored copy lost numpy's tree marker (a half-copied /tmp).
        os.unlink(os.path.join(st["numpy"]["path"], MARKER))
        _snapstart.after_restore()
        st = bootstrap.status()
        out["after_restore"] = {{k: (v["state"], v["extractions"]) for k, v in st.items()}}
        out["marker_back"] = os.path.exists(os.path.join(st["numpy"]["path"], MARKER))
        import numpy
        out["sum"] = float(numpy.arange(10).sum())
        print(json.dumps(out))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDASLIM_")}
    env.update({"LAMBDASLIM_LAYER_ROOTS": str(opt.path), "LAMBDASLIM_TMP": str(root),
                "PYTHONPATH": os.pathsep.join([str(opt.python), testing.runtime_dir()])})
    done = subprocess.run([sys.executable, "-S", "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["hooks"] is True
    assert out["before"]["numpy"] == "packed"
    assert out["after_snapshot"]["numpy"] == "extracted"
    assert out["after_restore"]["numpy"] == ["extracted", 2]  # extracted again after the restore
    assert out["marker_back"] is True
    assert out["sum"] == 45.0
