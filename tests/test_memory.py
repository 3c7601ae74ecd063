"""Issue 9: Python from memory, finding is not importing, namespace packages, metadata, children.

Real wheels (scikit-learn with numpy, scipy, joblib; jaraco's namespace portions; certifi's
data file; nvidia-nvtx-cu12, a top-level namespace with no Python at all), compiled to
bytecode as ``lambdaslim pack`` does, packed, and imported in fresh interpreters.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import pip_target
from helpers import unzip_layer
from lambdaenv import RESULT, lambda_env
from lambdaenv import run as _run_env
from lambdaslim.build._bytecode import compile_tree, interpreter_version
from lambdaslim.build._pack import pack_tree


def run(code: str, opt: Path, tmp: Path, **extra: str) -> object:
    """lambdaenv.run in memory mode (this file's subject) unless the test names a mode."""
    extra.setdefault("LAMBDASLIM_PYTHON", "memory")
    return _run_env(code, opt, tmp, **extra)

pytestmark = pytest.mark.slow

STACK = ["scikit-learn", "certifi", "nvidia-nvtx-cu12", "jaraco.functools", "jaraco.context"]


@pytest.fixture(scope="session")
def mem_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("memsite") / "site"
    shutil.copytree(pip_target(STACK), site)
    compile_tree(str(site), interpreter_version())  # .pyc beside .py, as pack's pipeline ships
    layer = tmp_path_factory.mktemp("memlayer") / "layer.zip"
    pack_tree(str(site), str(layer), level=1, quiet=True)
    return layer


@pytest.fixture
def opt(mem_layer: Path, tmp_path: Path) -> Path:
    return unzip_layer(mem_layer, tmp_path / "opt")


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path / "tmp"


def _written(tmp: Path, suffix: str) -> list[Path]:
    return [p for p in (tmp / "units").rglob("*" + suffix)] if (tmp / "units").exists() else []


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_find_spec_extracts_nothing(opt: Path, tmp: Path, mode: str) -> None:
    out = run("import importlib.util, lambdaslim.bootstrap as b\n"
              "s = importlib.util.find_spec('sklearn')\n"
              "n = importlib.util.find_spec('no_such_module_xyz')\n"
              "report([s.origin, s.submodule_search_locations, n, b.status()['scikit-learn']['state']])",
              opt, tmp, LAMBDASLIM_PYTHON=mode)
    origin, locations, missing, state = out
    assert origin.startswith(str(tmp / "units")) and origin.endswith("sklearn/__init__.py")
    assert locations == [str(Path(origin).parent)] and missing is None and state == "packed"
    assert not (tmp / "units").exists() or list((tmp / "units").iterdir()) == []


def test_memory_mode_writes_no_python_and_files_resolve(opt: Path, tmp: Path) -> None:
    out = run(
        "import os, lambdaslim.bootstrap as b, numpy, sklearn, sklearn.datasets\n"
        "X, y = sklearn.datasets.load_iris(return_X_y=True)\n"  # a data file read through importlib.resources
        "libs = os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), 'numpy.libs')\n"
        "s = b.status()['scikit-learn']\n"
        "report(dict(file=sklearn.__file__, dir=os.path.isdir(os.path.dirname(sklearn.__file__)),\n"
        "            exists=os.path.exists(sklearn.__file__), rows=len(X), libs=os.path.isdir(libs),\n"
        "            det=float(numpy.linalg.det(numpy.eye(3))), mode=s['mode'], memory=s['memory_bytes'],\n"
        "            disk=s['disk_bytes'], code=s['code_bytes']))",
        opt, tmp)
    assert out["file"].startswith(str(tmp / "units")) and out["dir"] and not out["exists"]
    assert out["rows"] == 150 and out["libs"] and out["det"] == 1.0 and out["mode"] == "memory"
    assert 0 < out["memory"] <= 32 * 1024 * 1024 and out["code"] > out["memory"] and out["disk"] > 0
    assert _written(tmp, ".py") == [] and _written(tmp, ".pyc") == []
    assert _written(tmp, ".so")  # extension modules are on disk


def test_source_for_tracebacks_inspect_and_linecache(opt: Path, tmp: Path) -> None:
    out = run(
        "import inspect, linecache, traceback, lambdaslim.bootstrap, numpy\n"
        "from sklearn.utils.validation import column_or_1d\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "try:\n    column_or_1d(numpy.zeros((3, 3)))\nexcept ValueError:\n    tb = traceback.format_exc()\n"
        "src = inspect.getsource(LogisticRegression.fit)\n"
        "mod = inspect.getsource(inspect.getmodule(column_or_1d))\n"
        "f = column_or_1d.__code__\n"
        "line = linecache.getline(f.co_filename, f.co_firstlineno)\n"
        "report([tb, 'def fit(self' in src, 'def column_or_1d' in mod, line.strip()[:17]])",
        opt, tmp)
    tb, src, whole, line = out
    assert "raise ValueError(" in tb and "validation.py" in tb
    assert src and whole and line == "def column_or_1d("


def test_pkgutil_lists_every_module_as_on_disk(opt: Path, tmp: Path) -> None:
    code = ("import pkgutil, lambdaslim.bootstrap, sklearn\n"
            "from sklearn.utils import all_estimators\n"
            "mods = sorted(m.name for m in pkgutil.walk_packages(sklearn.__path__, 'sklearn.'))\n"
            "report([len(all_estimators()), mods])")
    memory = run(code, opt, tmp, LAMBDASLIM_PYTHON="memory")
    disk = run(code, opt, tmp, LAMBDASLIM_PYTHON="disk")
    assert memory == disk and memory[0] > 100 and "sklearn.linear_model._logistic" in memory[1]


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_namespace_packages(opt: Path, tmp: Path, mode: str) -> None:
    out = run(
        "import os, lambdaslim.bootstrap, jaraco.functools, jaraco.context\n"
        "from nvidia.nvtx import lib\n"
        "report([sorted(os.listdir(list(lib.__path__)[0])), len(list(jaraco.__path__)),\n"
        "        jaraco.functools.compose(len, str)(123)])",
        opt, tmp, LAMBDASLIM_PYTHON=mode)
    assert out == [["libnvtx3interop.so.1"], 2, 3]


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_metadata_locate_gives_an_existing_file(opt: Path, tmp: Path, mode: str) -> None:
    out = run(
        "import importlib.metadata as md, lambdaslim.bootstrap as b\n"
        "files = {str(f): f for f in md.files('certifi')}\n"
        "pem = files['certifi/cacert.pem'].locate()\n"
        "init = files['certifi/__init__.py'].locate()\n"
        "report([str(pem), pem.read_text().count('BEGIN CERTIFICATE'), 'where' in init.read_text(),\n"
        "        md.version('certifi') == files['certifi/__init__.py'].dist.version,\n"
        "        sum(d.metadata['Name'] == 'certifi' for d in md.distributions())])",
        opt, tmp, LAMBDASLIM_PYTHON=mode)
    assert out[0].startswith(str(tmp / "units")) and out[1] > 0 and out[2:] == [True, True, 1]


def test_first_miss_loads_no_zip_reader(opt: Path, tmp: Path) -> None:
    out = run("import sys, lambdaslim.bootstrap\n"
              "try:\n    import no_such_module_xyz\nexcept ImportError:\n    pass\n"
              "report([m for m in ('zipfile', 'email.parser') if m in sys.modules])", opt, tmp)
    assert out == []


CHILD = "import jaraco.functools, sys; print(jaraco.functools.__file__)"


def _run_with_site(code: str, opt: Path, tmp: Path) -> object:
    """Like lambdaenv.run but without -S: Lambda runs site, which runs sitecustomize (children
    started by a -S parent inherit -S and skip it)."""
    import json
    import subprocess
    import sys

    prelude = f"import json as _json\ndef report(obj):\n    print({RESULT!r} + _json.dumps(obj), flush=True)\n"
    proc = subprocess.run([sys.executable, "-c", prelude + code], env=lambda_env(opt, tmp, LAMBDASLIM_PYTHON="memory"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    return json.loads(lines[-1][len(RESULT):])


def test_children_import_packed_distributions(opt: Path, tmp: Path, tmp_path: Path) -> None:
    user_site = tmp_path / "usersite"
    user_site.mkdir()
    (user_site / "sitecustomize.py").write_text("import os\nos.environ['USER_SITECUSTOMIZE_RAN'] = '1'\n")
    out = _run_with_site(
        "import os, subprocess, sys, multiprocessing as mp, lambdaslim.bootstrap\n"
        f"os.environ['PYTHONPATH'] += os.pathsep + {str(user_site)!r}\n"
        "import more_itertools\n"
        "child = subprocess.run([sys.executable, '-c', "
        f"{CHILD!r} + '; import os; print(os.environ.get(\"USER_SITECUSTOMIZE_RAN\"))'],\n"
        "                       capture_output=True, text=True)\n"
        "firsts = {}\n"
        "for method in ('fork', 'spawn', 'forkserver'):\n"
        "    with mp.get_context(method).Pool(1) as pool:\n"  # more_itertools.first pickled by reference
        "        firsts[method] = pool.map(more_itertools.first, [[7, 8]])\n"
        "import numpy\n"
        "from joblib import Parallel, delayed\n"
        "loky = Parallel(n_jobs=2, backend='loky')(delayed(more_itertools.first)([i]) for i in range(4))\n"
        "from sklearn.model_selection import cross_val_score\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.datasets import load_iris\n"
        "X, y = load_iris(return_X_y=True)\n"
        "scores = cross_val_score(LogisticRegression(max_iter=500), X, y, cv=2, n_jobs=2)\n"
        "report([child.returncode, child.stdout.split(), child.stderr, firsts, loky, len(scores)])",
        opt, tmp)
    assert isinstance(out, list)
    code, stdout, stderr, firsts, loky, n_scores = out
    assert code == 0, stderr
    assert stdout[0].startswith(str(tmp / "units")) and stdout[1] == "1"  # the user's sitecustomize ran
    assert firsts == {"fork": [7], "spawn": [7], "forkserver": [7]}
    assert loky == [0, 1, 2, 3] and n_scores == 2


def test_children_can_be_turned_off(opt: Path, tmp: Path) -> None:
    out = run("import subprocess, sys, lambdaslim.bootstrap\n"
              f"r = subprocess.run([sys.executable, '-c', {CHILD!r}], capture_output=True, text=True)\n"
              "report(r.returncode)", opt, tmp, LAMBDASLIM_CHILDREN="0")
    assert out == 1


def test_memory_is_the_default_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory mode is the default (code that lists its own sources is served by _sources:
    tests/test_sources.py); disk mode is the switch for code that must have every file."""
    from lambdaslim._runtime import _config

    monkeypatch.delenv("LAMBDASLIM_PYTHON", raising=False)
    assert _config.python_mode() == "memory"
    monkeypatch.setenv("LAMBDASLIM_PYTHON", "Disk ")
    assert _config.python_mode() == "disk"
    monkeypatch.setenv("LAMBDASLIM_PYTHON", "ram")
    with pytest.raises(ValueError, match="LAMBDASLIM_PYTHON"):
        _config.python_mode()
