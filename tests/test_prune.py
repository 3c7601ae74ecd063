"""Pruning, stubs, bytecode, tracing, ELF reading and limits on small trees made here (issue 4).

The tests on real wheels from the registry are in test_build.py.
"""

from __future__ import annotations

import csv
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from lambdaslim import PackError, StubbedDistributionError
from lambdaslim.build import _bytecode, _elf, _limits, _prune, _stub, _trace
from lambdaslim.build._build import LayerOut, check_limits, split_names
from lambdaslim.build._resolve import Target, explain_failure

from helpers import make_dist, run_in_site



def _record_paths(site: Path, dist_info: str) -> list[str]:
    with open(site / dist_info / "RECORD", newline="") as fh:
        return [row[0] for row in csv.reader(fh) if row]


def _tree(site: Path) -> set[str]:
    return {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    """A package with every kind of file the default steps look at."""
    root = tmp_path / "site"
    make_dist(root, "pkg", "1.0", {
        "pkg/__init__.py": b"from pkg import core\n",
        "pkg/core.py": b"VALUE = 1\n",
        "pkg/core.pyi": b"VALUE: int\n",
        "pkg/__pycache__/core.cpython-39.pyc": b"stale",
        "pkg/tests/__init__.py": b"",
        "pkg/tests/test_core.py": b"import pkg\n",
        "pkg/tests/helpers.py": b"HELPER = 2\n",
        "pkg/testing.py": b"from pkg.tests.helpers import HELPER\n",
        "pkg/conftest.py": b"",
        "pkg/docs/guide.txt": b"read me",
        "pkg/examples/__init__.py": b"EXAMPLES = 3\n",  # an importable package: kept
        "pkg/include/pkg.h": b"int x;",
        "pkg/lib/libpkg.a": b"!<arch>",
        "pkg/bin/test_api": b"\x7fELF",
        "pkg/bin/bench_ops": b"\x7fELF",
        "pkg/bin/pkg_shm_manager": b"\x7fELF",
        "pkg/data/table.csv": b"a,b\n",
        "bin/pkg-cli": b"#!/usr/bin/python3\n",
    })
    return root


def test_default_steps_remove_what_no_import_needs(site: Path) -> None:
    record = "pkg-1.0.dist-info/RECORD"  # rewritten shorter by pruning; every other size is exact
    record_before = (site / record).stat().st_size
    report = _prune.prune(str(site))
    left = _tree(site)
    for gone in ["pkg/core.pyi", "pkg/__pycache__/core.cpython-39.pyc", "pkg/tests/test_core.py",
                 "pkg/conftest.py", "pkg/docs/guide.txt", "pkg/include/pkg.h", "pkg/lib/libpkg.a",
                 "pkg/bin/test_api", "pkg/bin/bench_ops", "bin/pkg-cli"]:
        assert gone not in left, gone
    for kept in ["pkg/__init__.py", "pkg/core.py", "pkg/examples/__init__.py", "pkg/data/table.csv",
                 "pkg/bin/pkg_shm_manager", "pkg-1.0.dist-info/METADATA", "pkg-1.0.dist-info/RECORD",
                 # imported by pkg/testing.py, which stays: removing it would break `import pkg.testing`
                 "pkg/tests/helpers.py", "pkg/tests/__init__.py"]:
        assert kept in left, kept
    by_step = {s.name: s for s in report.steps}
    assert by_step["tests"].files == 2  # test_core.py, conftest.py
    assert by_step["stubs"].bytes == len(b"VALUE: int\n")
    assert report.after_bytes - record_before == sum((site / p).stat().st_size for p in left if p != record)
    assert not (site / "pkg" / "docs").exists()  # emptied folders go too
    # RECORD lists exactly the files that remain (outside-the-tree rows aside)
    listed = {p for p in _record_paths(site, "pkg-1.0.dist-info")}
    assert listed == {p for p in left if not p.startswith("pkg-1.0.dist-info/") or p.endswith(("METADATA", "RECORD"))}
    out = subprocess.run([sys.executable, "-S", "-c",
                          "import sys; sys.path.insert(0, sys.argv[1]); import pkg.testing, pkg.examples;"
                          "import importlib.metadata as m; print(m.version('pkg'), len(m.files('pkg')))",
                          str(site)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1.0", str(len(listed))]


def test_keep_wins_over_steps_and_drop(site: Path) -> None:
    report = _prune.prune(str(site), keep=["pkg/include", "*.pyi"], drop=["data", "pkg/bin/*"])
    left = _tree(site)
    assert "pkg/include/pkg.h" in left and "pkg/core.pyi" in left
    assert "pkg/data/table.csv" not in left and "pkg/bin/pkg_shm_manager" not in left
    assert [s.name for s in report.steps][-1] == "drop"


def test_metadata_is_never_removed_even_when_asked(site: Path) -> None:
    _prune.prune(str(site), drop=["*.dist-info", "METADATA", "RECORD"])
    assert {"pkg-1.0.dist-info/METADATA", "pkg-1.0.dist-info/RECORD"} <= _tree(site)


def test_pattern_semantics() -> None:
    assert _prune.match(["tests"], "a/tests/x.py")
    assert not _prune.match(["tests"], "a/tests_x.py")
    assert _prune.match(["torch/bin"], "torch/bin/sub/f")
    assert not _prune.match(["torch/bin"], "x/torch/bin/f")
    assert _prune.match(["torch/lib/libtorch_*.so"], "torch/lib/libtorch_cpu.so")
    assert _prune.match(["/torch/bin/"], "torch/bin/f")


def test_unknown_step_is_refused(site: Path) -> None:
    with pytest.raises(PackError, match="unknown pruning step"):
        _prune.prune(str(site), steps=["everything"])


def test_stub_imports_raises_a_clear_importerror_and_keeps_metadata(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_dist(site, "big-dep", "2.5", {"bigdep/__init__.py": b"X = 1\n", "bigdep/sub/mod.py": b"",
                                      "bigdep/data.bin": b"\0" * 1000, "bigdep_single.py": b"Y = 2\n"})
    result = _stub.stub(str(site), "Big_Dep")
    assert result.distribution == "big-dep" and result.removed_files == 4
    assert sorted(result.modules) == ["bigdep", "bigdep_single"]
    assert not (site / "bigdep" / "data.bin").exists()
    out = run_in_site(site, "\n".join([
        "import importlib.metadata as m, sys, bigdep, bigdep_single",
        "print(m.version('big-dep'), bigdep.__version__)",
        "from lambdaslim import StubbedDistributionError as E",
        # probing code (scikit-learn's isinstance(X, sys.modules['pandas'].DataFrame)) keeps working
        "print(isinstance(1, bigdep.X), isinstance(1, sys.modules['bigdep'].X), repr(bigdep.X).startswith('<name bigdep.X'))",
        "try:\n    bigdep.X([1])\nexcept E as e:\n    print(type(e).__name__, isinstance(e, ImportError), e.distribution, e.attribute)",
        "from bigdep_single import Y",
        "try:\n    Y.method\nexcept ImportError as e:\n    print('attribute', 'lambdaslim pack --stub big-dep' in str(e), e.attribute)",
        "try:\n    import bigdep.sub.mod\nexcept ModuleNotFoundError:\n    print('no submodules')",
        "print(hasattr(bigdep, '__wrapped__'))",
    ]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:6] == ["2.5 2.5", "False False True", "StubbedDistributionError True big-dep X",
                                          "attribute True Y.method", "no submodules", "False"]
    assert set(_record_paths(site, "big_dep-2.5.dist-info")) >= {"bigdep/__init__.py", "bigdep_single.py"}
    assert issubclass(StubbedDistributionError, ImportError)
    with pytest.raises(PackError, match="no distribution"):
        _stub.stub(str(site), "not-there")


def test_bytecode_is_unchecked_hash_and_recorded(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_dist(site, "pkg", "1.0", {"pkg/__init__.py": b"A = 1\n", "pkg/bad.py": b"def (:\n"})
    result = _bytecode.compile_tree(str(site), _bytecode.interpreter_version())
    assert (result.compiled, result.failed, result.skipped) == (1, 1, "")
    pyc = site / "pkg" / "__pycache__" / f"__init__.{sys.implementation.cache_tag}.pyc"
    flags = struct.unpack("<I", pyc.read_bytes()[4:8])[0]
    assert flags == 0b01  # hash-based, check_source off: unchecked-hash
    assert f"pkg/__pycache__/{pyc.name}" in _record_paths(site, "pkg-1.0.dist-info")
    other = "3.12" if _bytecode.interpreter_version() != "3.12" else "3.13"
    skipped = _bytecode.compile_tree(str(site), other)
    assert skipped.compiled == 0 and f"the target {other}" in skipped.skipped


def _trace_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    make_dist(site, "app", "1.0", {
        "app/__init__.py": b"from app import used\n",
        "app/used.py": b"import os\nDATA = open(os.path.join(os.path.dirname(__file__), 'table.txt')).read()\n",
        "app/table.txt": b"needed",
        "app/unused.py": b"raise RuntimeError('never imported')\n",
        "app/big_unused.bin": b"\0" * 10000,
        "app/lazy.py": b"Z = 1\n",
    })
    return site


def test_trace_keeps_only_touched_files(tmp_path: Path) -> None:
    site = _trace_site(tmp_path)
    result = _trace.trace_and_prune(str(site), f"{sys.executable} -c 'import app; assert app.used.DATA == \"needed\"'")
    left = _tree(site)
    assert {"app/__init__.py", "app/used.py", "app/table.txt", "app-1.0.dist-info/METADATA"} <= left
    assert not {"app/unused.py", "app/big_unused.bin", "app/lazy.py"} & left
    assert result.removed_files == 3 and result.removed_bytes == 10000 + len(b"Z = 1\n") + len(
        b"raise RuntimeError('never imported')\n")
    assert "app/unused.py" not in _record_paths(site, "app-1.0.dist-info")


def test_trace_refuses_when_the_command_fails_after_pruning(tmp_path: Path) -> None:
    site = _trace_site(tmp_path)
    marker = tmp_path / "second-run"
    # The second run takes a path the first did not: exactly what pruning cannot foresee.
    code = (f"import os, app; m = {str(marker)!r}\n"
            "if os.path.exists(m):\n    import app.lazy\nelse:\n    open(m, 'w').close()")
    script = tmp_path / "handler.py"
    script.write_text(code)
    with pytest.raises(_trace.TraceError, match="fails after pruning") as info:
        _trace.trace_and_prune(str(site), f"{sys.executable} {script}")
    assert "app.lazy" in info.value.output


def test_trace_refuses_a_command_that_fails_before_pruning(tmp_path: Path) -> None:
    site = _trace_site(tmp_path)
    with pytest.raises(_trace.TraceError, match="unpruned tree"):
        _trace.trace_and_prune(str(site), f"{sys.executable} -c 'import app.unused'")
    assert (site / "app" / "unused.py").exists()  # nothing removed


def test_trace_hides_this_machines_site_packages(tmp_path: Path) -> None:
    """pytest is installed here but not in the tree: the traced code must not see it."""
    site = _trace_site(tmp_path)
    with pytest.raises(_trace.TraceError, match="ModuleNotFoundError"):
        _trace.trace_and_prune(str(site), f"{sys.executable} -c 'import app, pytest'")


def test_elf_reader_on_this_interpreter() -> None:
    info = _elf.read_elf(os.path.realpath(sys.executable))
    assert info.machine_name == _elf.host_machine()
    assert info.loads and not _elf.load_problems(info)


def test_elf_reader_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "x.so"
    bad.write_bytes(b"\x7fELF" + b"\0" * 10)
    with pytest.raises(_elf.ElfError):
        _elf.read_elf(str(bad))
    assert not _elf.is_elf(str(tmp_path))


def test_misaligned_segment_is_detected() -> None:
    good = _elf.Segment(_elf.PT_LOAD, 0x3000, 0x5000, 10, 10, 0x1000)
    bad = _elf.Segment(_elf.PT_LOAD, 0x27a9a0, 0x484000, 10, 10, 0x1000)
    a = _elf.ElfInfo("a", 64, True, 3, 62, (good, good))
    b = _elf.ElfInfo("b", 64, True, 3, 62, (good, bad))
    assert not _elf.load_problems(a)
    assert "page size" in _elf.load_problems(b)[0]
    assert _elf.compare_layout(a, b)


@pytest.mark.skipif(shutil.which("strip") is None or shutil.which("cc") is None, reason="needs binutils and a C compiler")
def test_strip_libraries_strips_and_loads_a_real_library(tmp_path: Path) -> None:
    src = tmp_path / "lib.c"
    src.write_text("int answer(void) { return 42; }\n")
    lib = tmp_path / "libanswer.so"
    subprocess.run(["cc", "-g", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    before = lib.stat().st_size
    result = _elf.strip_libraries([str(lib)], machine=_elf.host_machine())
    assert result.stripped and lib.stat().st_size < before and result.loaded == 1
    import ctypes
    assert ctypes.CDLL(str(lib)).answer() == 42


def test_platform_tags_follow_the_runtime_glibc() -> None:
    t311 = Target.parse("3.11", "x86_64").platform_tags()
    assert t311[0] == "manylinux_2_26_x86_64" and "manylinux_2_27_x86_64" not in t311
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(t311)
    arm = Target.parse("3.12", "arm64")
    tags = arm.platform_tags()
    assert tags[0] == "manylinux_2_34_aarch64" and tags[-1] == "manylinux2014_aarch64"
    assert not any("manylinux1" in t or "x86_64" in t for t in tags)
    assert arm.machine == "aarch64" and arm.python_tag == "cp312"
    with pytest.raises(PackError, match="--python 2.7"):
        Target.parse("2.7")
    with pytest.raises(PackError, match="--arch"):
        Target.parse("3.12", "sparc")


def test_pip_failure_is_explained_with_package_and_target() -> None:
    target = Target.parse("3.12", "arm64")
    output = ("Collecting torch==1.0\nERROR: Could not find a version that satisfies the requirement "
              "torch==1.0 (from versions: 2.4.0, 2.5.0)\nERROR: No matching distribution found for torch==1.0\n")
    err = explain_failure(output, target)
    assert err.package == "torch==1.0"
    assert "arm64" in str(err) and "3.12" in str(err) and "2.4.0, 2.5.0" in str(err)


def test_limits_checks_and_way_out() -> None:
    mib = 1024 * 1024
    fine = check_limits([LayerOut("a.zip", 40 * mib, 60 * mib, 200 * mib, ["x"])], _limits.UNZIPPED_LAYERS)
    assert all(c.ok for c in fine)
    big = check_limits([LayerOut("a.zip", 60 * mib, 200 * mib, 900 * mib, ["x"])], 100 * mib)
    by = {c.what: c for c in big}
    assert not by["a.zip unzipped"].ok and by["a.zip unzipped"].hard and "--split 2" in by["a.zip unzipped"].advice
    assert not by["a.zip zip, direct upload"].ok and not by["a.zip zip, direct upload"].hard
    assert "EphemeralStorage to at least 1080 MB" in by["/tmp for a full extraction"].advice
    huge = check_limits([LayerOut("a.zip", 60 * mib, 300 * mib, 100, ["x"])], _limits.UNZIPPED_LAYERS)
    assert "container image" in huge[0].advice
    assert split_names("out/layer.zip", 3) == ["out/layer-1.zip", "out/layer-2.zip", "out/layer-3.zip"]
