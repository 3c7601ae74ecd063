"""``lambdaslim pack -r`` / ``verify`` on real wheels from the registry (issue 4).

Installs are shared across the file through session fixtures; layers are packed at a low zstd
level to keep the file fast (the level does not change what is tested).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lambdaslim.build import _bytecode, _elf, _prune
from lambdaslim._runtime._format import loads
from lambdaslim.build._resolve import Target, install

pytestmark = pytest.mark.slow

HOST_PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
HOST_ARCH = "arm64" if _elf.host_machine() == "aarch64" else "x86_64"
OTHER_ARCH = "x86_64" if HOST_ARCH == "arm64" else "arm64"
OTHER_PY = "3.12" if HOST_PY != "3.12" else "3.13"
SK_STACK = ["numpy", "scipy", "scikit-learn"]
FIT_PREDICT = (
    "import numpy as np\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "from sklearn.ensemble import RandomForestClassifier\n"
    "X = np.random.RandomState(0).rand(300, 4); y = (X[:, 0] + X[:, 1] > 1).astype(int)\n"
    "assert LogisticRegression().fit(X, y).score(X, y) > 0.9\n"
    "assert (RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y).predict(X) == y).mean() > 0.9\n"
)
HAS_BOOTSTRAP = importlib.util.find_spec("lambdaslim.bootstrap") is not None


def lambdaslim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDASLIM_")}
    return subprocess.run([sys.executable, "-m", "lambdaslim", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, stdin=subprocess.DEVNULL, timeout=600)


def packed_files(layer: Path) -> dict[str, bytes]:
    """{path: bytes} of every file packed in the layer's units (decompressed from the index)."""
    import zstandard

    out: dict[str, bytes] = {}
    with zipfile.ZipFile(layer) as zf:
        for name in zf.namelist():
            if name.startswith("lambdaslim/") and name.endswith("/index.json"):
                base = name.rpartition("/")[0]
                index = loads(zf.read(name))
                for unit in index.units:
                    for part in unit.parts:
                        data = zstandard.ZstdDecompressor().decompress(zf.read(f"{base}/{part.path}"))
                        pos = 0
                        for f in unit.files[part.first: part.first + part.count]:
                            out[f.path] = data[pos: pos + f.size]
                            pos += f.size
    return out


def elf_machine(data: bytes) -> int:
    return int.from_bytes(data[18:20], "little")


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="session")
def sk_site(build_dir: Path) -> Path:
    """numpy + scipy + scikit-learn installed for this interpreter and machine, never modified."""
    dest = build_dir / "sk-site"
    install(Target.parse(HOST_PY, HOST_ARCH), str(dest), requirements=SK_STACK)
    return dest


@pytest.fixture(scope="session")
def sk_layer(build_dir: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A stripped numpy + scipy + scikit-learn layer for this machine, resolved from the registry."""
    out = build_dir / "sk.zip"
    proc = lambdaslim("pack", *SK_STACK, "--python", HOST_PY, "--arch", HOST_ARCH, "--strip",
                      "--level", "3", "-o", str(out))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return out, proc


@pytest.fixture(scope="session")
def cross_layer(build_dir: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """numpy for the other architecture and another Python, stripped with the cross tool."""
    out = build_dir / "cross.zip"
    reqs = build_dir / "requirements.txt"
    reqs.write_text("numpy\n")
    proc = lambdaslim("pack", "-r", str(reqs), "threadpoolctl", "--python", OTHER_PY, "--arch",
                      OTHER_ARCH, "--strip", "--level", "3", "-o", str(out))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return out, proc


def test_cross_arch_layer_holds_only_target_machine_libraries(cross_layer: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    layer, proc = cross_layer
    want = {"arm64": 183, "x86_64": 62}[OTHER_ARCH]  # EM_AARCH64, EM_X86_64
    files = packed_files(layer)
    libs = {p: d for p, d in files.items() if d[:4] == b"\x7fELF"}
    assert len(libs) > 10 and any(p.startswith("numpy.libs/") for p in libs)
    assert {p for p, d in libs.items() if elf_machine(d) != want} == set()
    assert "threadpoolctl.py" in files
    with zipfile.ZipFile(layer) as zf:
        runtime = [n for n in zf.namelist() if n.startswith("python/lambdaslim/_vendor/zstandard/") and n.endswith(".so")]
        assert runtime and all(elf_machine(zf.read(n)) == want for n in runtime)
        assert all(f"cpython-{OTHER_PY.replace('.', '')}" in n for n in runtime)
    # bytecode is version-specific: a pack for another Python ships sources and says so
    assert not any(p.endswith(".pyc") for p in files)
    assert "shipping sources only" in proc.stdout
    # every stripped library still satisfies the loader's alignment rule
    tmp = layer.parent / "cross-libs"
    tmp.mkdir(exist_ok=True)
    for n, (path, data) in enumerate(libs.items()):
        f = tmp / f"{n}.so"
        f.write_bytes(data)
        assert not _elf.load_problems(_elf.read_elf(str(f))), path


@pytest.mark.skipif(not HAS_BOOTSTRAP, reason="lambdaslim.bootstrap not in this tree yet")
def test_sklearn_layer_verifies_with_fit_predict_under_512mb(sk_layer: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    layer, pack = sk_layer
    assert "numpy" in pack.stdout and "Lambda limits:" in pack.stdout
    files = packed_files(layer)
    assert any(p.startswith("sklearn/") and p.endswith(".pyc") for p in files)  # target == host
    assert not any("/tests/" in p for p in files if p.startswith("sklearn/"))
    want = {"x86_64": 62, "arm64": 183}[HOST_ARCH]
    assert all(elf_machine(d) == want for d in files.values() if d[:4] == b"\x7fELF")
    proc = lambdaslim("verify", str(layer), "--tmp-limit", "512MB", "--import", "sklearn",
                      "--import", "scipy.stats", "--run", FIT_PREDICT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.split()[:2] == ["ok", "sklearn"] for line in lines)
    assert any(line.split()[:2] == ["ok", "--run"] for line in lines)
    assert lines[-1] == "3 ok, 0 failed"


@pytest.mark.skipif(not HAS_BOOTSTRAP, reason="lambdaslim.bootstrap not in this tree yet")
def test_verify_fails_on_a_failing_import_and_a_budget_too_small(sk_layer: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    layer, _ = sk_layer
    proc = lambdaslim("verify", str(layer), "--import", "numpy", "--import", "no_such_module")
    assert proc.returncode == 1
    assert "FAILED  no_such_module" in proc.stdout and "1 ok, 1 failed" in proc.stdout
    proc = lambdaslim("verify", str(layer), "--tmp-limit", "20MB", "--import", "scipy")
    assert proc.returncode == 1
    assert "StorageBudgetError" in proc.stdout or "EphemeralStorage" in proc.stdout


def test_pruning_keeps_every_distribution_importable_and_its_metadata(sk_site: Path, tmp_path: Path) -> None:
    tree = tmp_path / "site"
    shutil.copytree(sk_site, tree)
    report = _prune.prune(str(tree))
    assert report.removed_bytes > 20_000_000  # numpy's and scipy's tests at least
    _bytecode.compile_tree(str(tree), HOST_PY)
    code = "\n".join([
        "import sys; sys.path.insert(0, sys.argv[1])",
        "import importlib.metadata as m, os",
        "names = []",
        "for d in m.distributions(path=[sys.argv[1]]):",
        "    name = d.metadata['Name']",
        "    assert m.version(name) == d.version, name",
        "    missing = [str(f) for f in d.files if not os.path.exists(f.locate()) and not str(f).startswith('..')]",
        "    assert not missing, (name, missing[:3])",
        "    names.append(name)",
        "from numpy import *",
        "import numpy.testing, scipy.stats, scipy.sparse.linalg, sklearn.linear_model, sklearn.ensemble",
        FIT_PREDICT,
        "print(sorted(n.lower() for n in names))",
    ])
    proc = subprocess.run([sys.executable, "-S", "-c", code, str(tree)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert {"numpy", "scipy", "scikit-learn", "joblib", "threadpoolctl"} <= set(eval(proc.stdout))


def test_strip_keeps_the_original_openblas_that_plain_strip_breaks(sk_site: Path, tmp_path: Path) -> None:
    if shutil.which("strip") is None:
        pytest.skip("binutils' strip is not installed")
    tree = tmp_path / "numpy-tree"
    shutil.copytree(sk_site / "numpy", tree / "numpy")
    shutil.copytree(sk_site / "numpy.libs", tree / "numpy.libs")
    (openblas,) = glob.glob(str(tree / "numpy.libs" / "libscipy_openblas*.so"))
    # what plain strip does to it: the dynamic loader refuses the result
    broken = tmp_path / "broken.so"
    subprocess.run(["strip", "--strip-unneeded", "-o", str(broken), openblas], check=True)
    assert _elf.load_problems(_elf.read_elf(str(broken)))
    load = "import ctypes, sys\ntry:\n    ctypes.CDLL(sys.argv[1])\nexcept OSError as e:\n    print(e)"
    msg = subprocess.run([sys.executable, "-c", load, str(broken)], capture_output=True, text=True).stdout
    assert "not page-aligned" in msg or "not properly aligned" in msg
    # lambdaslim's strip keeps the original and strips the rest
    original = Path(openblas).read_bytes()
    libs = [str(p) for p in tree.rglob("*.so*")]
    result = _elf.strip_libraries(libs, machine=_elf.host_machine())
    assert openblas in result.kept and "would not load" in result.kept[openblas]
    assert Path(openblas).read_bytes() == original
    assert result.stripped and result.loaded == len(result.stripped)
    check = "import sys; sys.path.insert(0, sys.argv[1]); import numpy as np; print(np.linalg.inv(np.eye(3) * 2)[0, 0])"
    proc = subprocess.run([sys.executable, "-S", "-c", check, str(tree)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "0.5", proc.stderr


def test_no_wheel_for_the_target_names_package_and_target(tmp_path: Path) -> None:
    out = tmp_path / "x.zip"
    proc = lambdaslim("pack", "numpy==1.21.0", "--python", "3.12", "--arch", "arm64", "-o", str(out))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "numpy==1.21.0" in lines[0] and "Python 3.12 on arm64" in lines[0]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_keep_imported_prunes_to_what_the_handler_uses(sk_site: Path, tmp_path: Path) -> None:
    handler = tmp_path / "handler.py"
    handler.write_text(FIT_PREDICT)
    out = tmp_path / "traced.zip"
    proc = lambdaslim("pack", "--from", str(sk_site), "--keep-imported", f"{sys.executable} handler.py",
                      "--level", "1", "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    step = next(line for line in proc.stdout.splitlines() if line.strip().startswith("keep-imported"))
    assert "0 files" not in step
    files = packed_files(out)
    assert "sklearn/linear_model/_logistic.py" in files
    assert "sklearn/cluster/_kmeans.py" not in files  # never imported by the handler
    assert any(p.startswith("numpy.libs/") for p in files)  # loaded by the dynamic linker
    assert any(p.endswith("dist-info/METADATA") and p.startswith("scikit_learn") for p in files)
    if HAS_BOOTSTRAP:
        check = lambdaslim("verify", str(out), "--import", "sklearn.linear_model", "--run", FIT_PREDICT)
        assert check.returncode == 0, check.stdout


def test_split_writes_layers_that_work_together_and_limits_exit_3(sk_site: Path, tmp_path: Path) -> None:
    over = lambdaslim("pack", "--from", str(sk_site), "--max-layer-size", "20MB", "--level", "1",
                      "-o", str(tmp_path / "big.zip"))
    assert over.returncode == 3
    assert "OVER (hard limit)" in over.stderr and "--split" in over.stderr
    proc = lambdaslim("pack", "--from", str(sk_site), "--split", "2", "--level", "1",
                      "-o", str(tmp_path / "layer.zip"))
    assert proc.returncode == 0, proc.stderr
    parts = [tmp_path / "layer-1.zip", tmp_path / "layer-2.zip"]
    names = [set(p.split("/")[0] for p in packed_files(z)) for z in parts]
    assert names[0] and names[1] and not names[0] & names[1] - {"__pycache__"}
    if HAS_BOOTSTRAP:
        check = lambdaslim("verify", *map(str, parts), "--import", "sklearn", "--run", FIT_PREDICT)
        assert check.returncode == 0, check.stdout


@pytest.mark.skipif(not HAS_BOOTSTRAP, reason="lambdaslim.bootstrap not in this tree yet")
def test_stubbed_pandas_keeps_metadata_and_sklearn_working(sk_site: Path, tmp_path: Path) -> None:
    """The seed's trick (pandas replaced by an empty package), made safe: once anything imported
    the stub, scikit-learn's isinstance(X, sys.modules['pandas'].DataFrame) probe must still work."""
    site = tmp_path / "site"
    shutil.copytree(sk_site, site)
    install(Target.parse(HOST_PY, HOST_ARCH), str(site), requirements=["pandas"], pip_args=["--no-deps"])
    out = tmp_path / "stubbed.zip"
    proc = lambdaslim("pack", "--from", str(site), "--stub", "pandas", "--level", "1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "stub pandas" in proc.stdout
    files = packed_files(out)
    assert not any(p.startswith("pandas/core/") for p in files)
    run = FIT_PREDICT + "\n".join([
        "import importlib.metadata as m, pandas",
        "assert m.version('pandas') == pandas.__version__",
        "try:\n    pandas.DataFrame({'a': [1]})\nexcept ImportError as e:\n    assert type(e).__name__ == 'StubbedDistributionError'",
        "else:\n    raise AssertionError('the stub built a DataFrame')",
    ])
    check = lambdaslim("verify", str(out), "--import", "pandas", "--import", "sklearn", "--run", run)
    assert check.returncode == 0, check.stdout


def test_a_size_against_a_limit_is_shown_in_the_limits_unit() -> None:
    """536 MB (decimal) fits AWS's "512 MB" (512 MiB): the report must not print
    "535.9 MB / 512 MB ok" nor "512.1 MB / 512 MB ok"."""
    from lambdaslim.build import _limits

    mib = 1 << 20
    assert _limits.show(512 * mib) == "512 MB" and _limits.show(10**6) == "1.0 MB"
    assert _limits.against(535_900_000, 512 * mib) == "511.1 MB"
    assert _limits.against(512 * mib + mib // 5, 512 * mib) == "512.2 MB"
    assert _limits.against(535_900_000, 10**9) == "535.9 MB"  # a decimal limit: decimal units
