"""The bootstrap (issue 3), proven in fresh interpreters that see only the layer's python/."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from lambdaslim.build._pack import pack_tree

from helpers import unzip_layer
from lambdaenv import finish, run, start

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def small_layer(small_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    layer = tmp_path_factory.mktemp("layer") / "layer.zip"
    # Small parts: numpy is cut into several, so extraction runs part by part.
    pack_tree(str(small_site), str(layer), level=3, part_bytes=4 << 20, quiet=True)
    return layer


@pytest.fixture
def opt(small_layer: Path, tmp_path: Path) -> Path:
    return unzip_layer(small_layer, tmp_path / "opt")


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path / "tmp"


STATES = "report({k: v['state'] for k, v in lambdaslim.bootstrap.status().items()})"


def test_lazy_only_the_imported_distribution_is_extracted(opt: Path, tmp: Path) -> None:
    states = run("import lambdaslim.bootstrap, six\nassert six.u('x') == 'x'\n" + STATES, opt, tmp)
    assert states["six"] == "extracted"
    assert states["numpy"] == "packed"
    assert {s for n, s in states.items() if n != "six"} == {"packed"}
    assert [p.name.split("-")[0] for p in (tmp / "units").iterdir()] == ["six"]


def test_import_of_bootstrap_reads_nothing(opt: Path, tmp: Path) -> None:
    # No layer is read and nothing is written until an import misses.
    run("import lambdaslim.bootstrap\nimport lambdaslim.bootstrap\nimport sys\n"
        "report(sum(type(f).__name__ == 'LayerFinder' for f in sys.meta_path))", opt, tmp)
    assert not tmp.exists()


def test_numpy_with_vendored_libs_and_namespace_packages(opt: Path, tmp: Path) -> None:
    out = run(
        "import lambdaslim.bootstrap\n"
        "import numpy\n"
        "import jaraco.functools, jaraco.context\n"
        "report({'sum': int(numpy.arange(10).sum()), 'inv': numpy.linalg.inv([[2.0]]).tolist(),\n"
        "        'ns': sorted(p.split('/')[-2].split('-')[0] for p in jaraco.__path__)})",
        opt, tmp)
    assert out == {"sum": 45, "inv": [[0.5]], "ns": ["jaraco.context", "jaraco.functools"]}


def test_importlib_metadata_before_and_after_extraction(opt: Path, tmp: Path) -> None:
    out = run(
        "import lambdaslim.bootstrap\n"
        "from importlib import metadata as md\n"
        "before = md.version('numpy')\n"
        "names = sorted(d.metadata['Name'] for d in md.distributions())\n"
        "eps = sorted(e.name for e in md.entry_points(group='console_scripts') if e.name == 'f2py')\n"
        "state = lambdaslim.bootstrap.status()['numpy']['state']\n"
        "import numpy\n"
        "after = md.version('numpy')\n"
        "count = [d.metadata['Name'] for d in md.distributions()].count('numpy')\n"
        "report(dict(before=before, after=after, names=names, eps=eps, state=state, count=count,\n"
        "            real=numpy.__version__))",
        opt, tmp)
    assert out["state"] == "packed"
    assert out["before"] == out["after"] == out["real"]
    assert {"numpy", "six", "jaraco.functools", "jaraco.context"} <= set(out["names"])
    assert out["eps"] == ["f2py"]
    assert out["count"] == 1, "an extracted distribution is listed once"


CONCURRENT = (
    "import os, time, sys\n"
    "while not os.path.exists(os.environ['GO']): time.sleep(0.001)\n"
    "import lambdaslim.bootstrap\n"
    "import numpy\n"
    "assert int(numpy.ones(3).sum()) == 3\n"
    "report(lambdaslim.bootstrap.status()['numpy']['extractions'])\n"
)


def test_eight_processes_extract_once(opt: Path, tmp: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [start(CONCURRENT, opt, tmp, GO=str(go)) for _ in range(8)]
    time.sleep(0.5)  # let all eight reach the barrier
    go.write_text("")
    results = [finish(p) for p in procs]
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    assert sum(r for _, r, _ in results) == 1, "exactly one process decompressed numpy"
    assert len([p for p in (tmp / "units").iterdir() if p.name.startswith("numpy")]) == 1
    assert list((tmp / "staging").iterdir()) == []


KILLABLE = (
    "import os, time, lambdaslim._runtime._extract as ex\n"
    "real = ex.extract_part\n"
    "calls = []\n"
    "def slow(*a, **k):\n"
    "    n = real(*a, **k)\n"
    "    calls.append(n)\n"
    "    if len(calls) == 2:\n"
    "        open(os.environ['MIDWAY'], 'w').close()\n"
    "        time.sleep(600)\n"
    "    return n\n"
    "ex.extract_part = slow\n"
    "import lambdaslim.bootstrap\n"
    "import numpy\n"
)


def test_sigkill_mid_extraction_never_leaves_a_usable_half_tree(opt: Path, tmp: Path, tmp_path: Path) -> None:
    midway = tmp_path / "midway"
    victim = start(KILLABLE, opt, tmp, MIDWAY=str(midway))
    deadline = time.monotonic() + 60
    while not midway.exists():
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    staged = list((tmp / "staging").iterdir())
    assert staged and any(p.is_file() for p in staged[0].rglob("*")), "killed with files half-written"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not any(p.name.startswith("numpy") for p in (tmp / "units").iterdir())
    out = run("import lambdaslim.bootstrap, numpy\n"
              "report([int(numpy.arange(4).sum()), lambdaslim.bootstrap.status()['numpy']['extractions']])",
              opt, tmp)
    assert out == [6, 1]
    assert list((tmp / "staging").iterdir()) == [], "the dead process's leftovers are swept"


def test_budget_refusal_names_distribution_sizes_and_fix(opt: Path, tmp: Path) -> None:
    out = run(
        "import errno, lambdaslim, lambdaslim.bootstrap\n"
        "import six\n"  # fits
        "try:\n"
        "    import numpy\n"
        "except lambdaslim.StorageBudgetError as e:\n"
        "    report(dict(msg=str(e), needed=e.needed, available=e.available, mb=e.suggested_mb,\n"
        "                enospc=isinstance(e, OSError) and e.errno == errno.ENOSPC))\n",
        opt, tmp, LAMBDASLIM_TMP_LIMIT="20MB")
    assert out is not None, "importing numpy past the budget must raise StorageBudgetError"
    assert out["enospc"], "StorageBudgetError is an OSError with errno ENOSPC"
    assert "numpy" in out["msg"] and "EphemeralStorage" in out["msg"]
    assert out["needed"] > 20_000_000 > out["available"] > 0
    assert out["mb"] * 1_000_000 >= out["needed"]
    assert [p.name.split("-")[0] for p in (tmp / "units").iterdir()] == ["six"]
    assert list((tmp / "staging").iterdir()) == [], "nothing of numpy was written"


def test_warm_reuse_decompresses_nothing(opt: Path, tmp: Path) -> None:
    # Disk mode: the tree holds every file (memory mode reads code from the parts).
    assert run("import lambdaslim.bootstrap, numpy\nreport(1)", opt, tmp, LAMBDASLIM_PYTHON="disk") == 1
    shutil.rmtree(next((opt / "lambdaslim").iterdir()) / "parts")  # nothing left to decompress
    out = run("import lambdaslim.bootstrap, numpy\n"
              "s = lambdaslim.bootstrap.status()['numpy']\n"
              "report([int(numpy.arange(3).sum()), s['state'], s['extractions']])", opt, tmp,
              LAMBDASLIM_PYTHON="disk")
    assert out == [3, "extracted", 0]


def test_new_layer_version_never_reuses_an_old_tree(opt: Path, tmp: Path, tmp_path: Path) -> None:
    from helpers import make_dist

    site = tmp_path / "site"
    make_dist(site, "mod", "1.0", {"mod/__init__.py": b"V = 1\n"})
    layer_opt = tmp_path / "opt2"
    pack_tree(str(site), str(tmp_path / "a.zip"), level=1, quiet=True)
    unzip_layer(tmp_path / "a.zip", layer_opt)
    assert run("import lambdaslim.bootstrap, mod\nreport(mod.V)", layer_opt, tmp) == 1
    (site / "mod" / "__init__.py").write_bytes(b"V = 2\n")  # same name and version, new content
    shutil.rmtree(layer_opt)
    pack_tree(str(site), str(tmp_path / "b.zip"), level=1, quiet=True)
    unzip_layer(tmp_path / "b.zip", layer_opt)
    assert run("import lambdaslim.bootstrap, mod\nreport(mod.V)", layer_opt, tmp) == 2


def test_release_then_reextract_on_demand(opt: Path, tmp: Path) -> None:
    out = run(
        "import os, lambdaslim.bootstrap as b, numpy\n"
        "path = b.status()['numpy']['path']\n"
        "released = b.release('numpy')\n"
        "gone = not os.path.exists(path)\n"
        "state = b.status()['numpy']['state']\n"
        "import numpy.f2py\n"  # a submodule not imported yet needs the tree again
        "s = b.status()['numpy']\n"
        "report(dict(released=released, gone=gone, state=state, after=s['state'], n=s['extractions'],\n"
        "            works=int(numpy.arange(3).sum())))",
        opt, tmp)
    assert out == {"released": ["numpy"], "gone": True, "state": "released", "after": "extracted", "n": 2,
                   "works": 3}


def test_cleanup_after_import(opt: Path, tmp: Path) -> None:
    out = run(
        "import lambdaslim.bootstrap as b, lambdaslim.budget\n"
        "import numpy\n"
        "report(dict(state=b.status()['numpy']['state'], packages=lambdaslim.budget.usage()['packages'],\n"
        "            works=float(numpy.linalg.det(numpy.eye(2)))))",
        opt, tmp, LAMBDASLIM_CLEANUP="after-import")
    assert out == {"state": "released", "packages": 0, "works": 1.0}
    assert list((tmp / "units").iterdir()) == []


def test_eager_extracts_everything(opt: Path, tmp: Path) -> None:
    states = run("import lambdaslim.bootstrap\n" + STATES, opt, tmp, LAMBDASLIM_EAGER="1")
    assert set(states.values()) == {"extracted"}


def _zip_dir(src: Path, dest: Path, extra: dict[str, bytes] | None = None) -> None:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)


def test_old_style_zip_bundle(small_site: Path, tmp_path: Path, tmp: Path) -> None:
    opt = tmp_path / "opt"
    bundle_src = tmp_path / "bundle"
    bundle_src.mkdir()
    shutil.copy2(small_site / "six.py", bundle_src / "six.py")
    shutil.copytree(small_site / "six-1.17.0.dist-info", bundle_src / "six-1.17.0.dist-info")
    opt.mkdir()
    _zip_dir(bundle_src, opt / ".requirements.zip")
    # The layer's python/ folder: lambdaslim and its dependencies (taken from a packed layer).
    layer = tmp_path / "l.zip"
    from helpers import make_dist

    make_dist(tmp_path / "dummy", "dummy", "1.0", {"dummy.py": b""})
    pack_tree(str(tmp_path / "dummy"), str(layer), level=1, quiet=True)
    with zipfile.ZipFile(layer) as zf:
        zf.extractall(opt, [n for n in zf.namelist() if n.startswith("python/")])
    out = run("import lambdaslim.bootstrap as b\n"
              "from importlib import metadata\n"
              "v = metadata.version('six')\n"
              "import six\n"
              "report([six.__version__, v, b.status()['.requirements.zip']['state']])", opt, tmp)
    assert out == ["1.17.0", "1.17.0", "extracted"]


@pytest.mark.parametrize("evil", ["../../escaped.py", "/abs/evil.py", "symlink"])
def test_hostile_zip_bundle_is_refused_and_writes_nothing_outside(tmp_path: Path, tmp: Path, evil: str) -> None:
    opt = tmp_path / "opt"
    layer = tmp_path / "l.zip"
    from helpers import make_dist

    make_dist(tmp_path / "dummy", "dummy", "1.0", {"dummy.py": b""})
    pack_tree(str(tmp_path / "dummy"), str(layer), level=1, quiet=True)
    with zipfile.ZipFile(layer) as zf:
        zf.extractall(opt, [n for n in zf.namelist() if n.startswith("python/")])
    with zipfile.ZipFile(opt / "bundle.zip", "w") as zf:
        zf.writestr("evilpkg/__init__.py", "X = 1\n")
        if evil == "symlink":
            info = zipfile.ZipInfo("evilpkg/link")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
        else:
            zf.writestr(evil, "pwned = True\n")
    out = run("import lambdaslim, lambdaslim.bootstrap\n"
              "try:\n    import evilpkg\nexcept lambdaslim.ArchiveError as e:\n    report(str(e))\n", opt, tmp)
    assert "bundle.zip" in out
    assert not (tmp_path / "escaped.py").exists() and not Path("/abs/evil.py").exists()
    assert not (tmp / "units").exists() or list((tmp / "units").iterdir()) == []
    assert list((tmp / "staging").iterdir()) == []


@pytest.mark.parametrize("mode", ["disk", "memory"])
def test_corrupt_part_raises_archive_error_and_leaves_nothing(opt: Path, tmp: Path, mode: str) -> None:
    layer_dir = next((opt / "lambdaslim").iterdir())
    for part in (layer_dir / "parts").glob("six-*.zst"):
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0x55
        part.write_bytes(bytes(data))
    out = run("import lambdaslim, lambdaslim.bootstrap\n"
              "try:\n    import six\nexcept lambdaslim.ArchiveError as e:\n    report(str(e))\n", opt, tmp,
              LAMBDASLIM_PYTHON=mode)
    assert "six" in out and "parts/six-" in out
    assert list((tmp / "staging").iterdir()) == []
    if mode == "disk":
        assert list((tmp / "units").iterdir()) == []
    else:  # the (verified) disk parts may be published; no byte of the corrupt code is
        assert [p for p in tmp.rglob("*") if p.is_file() and p.name != ".lambdaslim-complete"
                and "units" in p.parts] == []


def test_import_bootstrap_imports_no_heavy_module(opt: Path, tmp: Path) -> None:
    """The import-time budget: which modules `import lambdaslim.bootstrap` pulls in."""
    proc = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-c", "import lambdaslim.bootstrap"],
        env={**os.environ, "PYTHONPATH": str(opt / "python"), "LAMBDASLIM_LAYER_ROOTS": str(opt),
             "LAMBDASLIM_TMP": str(tmp)},
        capture_output=True, text=True, check=True)
    modules = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    for heavy in ("boto3", "botocore", "filelock", "zstandard", "json", "dataclasses", "logging",
                  "importlib.metadata", "concurrent.futures", "typing", "zipfile"):
        assert heavy not in modules, f"import lambdaslim.bootstrap imports {heavy}"
    assert "lambdaslim.bootstrap" in modules


def test_several_layers_share_one_opt(tmp_path: Path, tmp: Path) -> None:
    from helpers import make_dist

    opt = tmp_path / "opt"
    for n in (1, 2, 3):
        site = tmp_path / f"site{n}"
        make_dist(site, f"mod{n}", "1.0", {f"mod{n}/__init__.py": f"N = {n}\n".encode()})
        pack_tree(str(site), str(tmp_path / f"l{n}.zip"), level=1, quiet=True)
        unzip_layer(tmp_path / f"l{n}.zip", opt)  # Lambda merges every layer into /opt
    assert len(list((opt / "lambdaslim").iterdir())) == 3
    out = run("import lambdaslim.bootstrap as b, mod1, mod3\n"
              "report([mod1.N, mod3.N, sorted((k, v['state']) for k, v in b.status().items())])", opt, tmp)
    assert out == [1, 3, [["mod1", "extracted"], ["mod2", "packed"], ["mod3", "extracted"]]]
