"""Issue 13 on small trees made here: GPU-only distributions made absent, pruning spares what
packages name, the record of what each step removed, the over-limit plan.

The same on real wheels from the registry (xgboost + nvidia-nccl-cu12, onnx, numpy) is in
test_needs_wheels.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdaslim.build import _gpu, _limits, _plan, _provenance, _prune
from lambdaslim.build._build import LayerOut, check_limits

from helpers import make_dist, run_in_site


def _entry_points(site: Path, dist_info: str, text: str) -> None:
    (site / dist_info / "entry_points.txt").write_text(text)
    with open(site / dist_info / "RECORD", "a") as fh:
        fh.write(f"{dist_info}/entry_points.txt,,\n")


def test_the_gpu_list() -> None:
    for name in ("nvidia-nccl-cu12", "nvidia_cudnn_cu12", "triton", "pytorch-triton", "cupy-cuda12x",
                 "jax-cuda12-plugin", "tensorrt-libs"):
        assert _gpu.is_gpu_only(name), name
    for name in ("nvidia-ml-py", "numpy", "torch", "xgboost", "tritonclient", "jax"):
        assert not _gpu.is_gpu_only(name), name


@pytest.fixture()
def gpu_site(tmp_path: Path) -> Path:
    """Two CUDA wheels sharing the nvidia/ namespace (one with the old nvidia/__init__.py) and a user."""
    site = tmp_path / "site"
    make_dist(site, "nvidia-nccl-cu12", "2.21.5", {"nvidia/__init__.py": b"", "nvidia/nccl/__init__.py": b"",
                                                   "nvidia/nccl/lib/libnccl.so.2": b"\0" * 5000})
    make_dist(site, "nvidia-cublas-cu12", "12.4.5", {"nvidia/__init__.py": b"", "nvidia/cublas/lib/libcublas.so.12": b"\0" * 7000})
    _entry_points(site, "nvidia_cublas_cu12-12.4.5.dist-info", "[some.plugins]\ncublas = nvidia.cublas\n")
    make_dist(site, "booster", "1.0", {"booster/__init__.py": (
        b"def find_nccl():\n"
        b"    try:\n        from nvidia.nccl import lib\n    except ImportError:\n        return None\n"
        b"    return lib.__path__[0]\n")})
    return site


def test_gpu_only_distributions_are_absent_as_on_a_machine_without_them(gpu_site: Path) -> None:
    results = _gpu.make_absent(str(gpu_site))
    assert sorted((r.distribution, r.removed_files, r.removed_bytes) for r in results) == [
        ("nvidia-cublas-cu12", 2, 7000), ("nvidia-nccl-cu12", 2, 5000)]  # the shared file counted once
    assert not (gpu_site / "nvidia").exists()  # the shared __init__ went with its last claimant
    for d in ("nvidia_nccl_cu12-2.21.5.dist-info", "nvidia_cublas_cu12-12.4.5.dist-info"):
        assert (gpu_site / d / "METADATA").exists() and (gpu_site / d / _gpu.MARKER).exists()
    assert not (gpu_site / "nvidia_cublas_cu12-12.4.5.dist-info" / "entry_points.txt").exists()
    out = run_in_site(gpu_site, "\n".join([
        "import importlib.metadata as m, importlib.util, booster",
        "print(booster.find_nccl(), importlib.util.find_spec('nvidia'), m.version('nvidia-nccl-cu12'))",
        "print([e.name for e in m.entry_points(group='some.plugins')])",
        "try:\n    from nvidia.nccl import lib\nexcept ModuleNotFoundError as e:\n    print(e.name)",
        "print(sorted(str(f) for f in m.files('nvidia-nccl-cu12')))",
    ]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "None None 2.21.5", "[]", "nvidia",
        "['nvidia_nccl_cu12-2.21.5.dist-info/LAMBDASLIM_ABSENT', 'nvidia_nccl_cu12-2.21.5.dist-info/METADATA', "
        "'nvidia_nccl_cu12-2.21.5.dist-info/RECORD']"]


def test_keep_gpu_keeps_one_or_all(gpu_site: Path) -> None:
    assert _gpu.make_absent(str(gpu_site), keep=["*"]) == []
    results = _gpu.make_absent(str(gpu_site), keep=["NVIDIA_NCCL_CU12"])
    assert [r.distribution for r in results] == ["nvidia-cublas-cu12"]
    assert (gpu_site / "nvidia" / "__init__.py").exists()  # nccl, kept, still claims it
    assert (gpu_site / "nvidia" / "nccl" / "lib" / "libnccl.so.2").exists()
    assert not (gpu_site / "nvidia" / "cublas").exists()


def test_a_cuda_torch_is_recognised_and_the_cpu_wheel_named(tmp_path: Path) -> None:
    cuda, cpu = tmp_path / "cuda", tmp_path / "cpu"
    make_dist(cuda, "torch", "2.5.1", {"torch/__init__.py": b"", "torch/version.py": b"cuda = '12.4'\n"})
    with open(cuda / "torch-2.5.1.dist-info" / "METADATA", "a") as fh:
        fh.write("Requires-Dist: filelock\nRequires-Dist: nvidia-cublas-cu12==12.4.5.8; platform_system == \"Linux\"\n")
    make_dist(cpu, "torch", "2.5.1+cpu", {"torch/__init__.py": b"", "torch/version.py": b"cuda: Optional[str] = None\n"})
    assert _gpu.torch_cuda_build(str(cuda)) == "2.5.1"
    assert _gpu.torch_cuda_build(str(cpu)) is None
    (cuda / "torch-2.5.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.5.1\n")
    assert _gpu.torch_cuda_build(str(cuda)) == "2.5.1"  # from torch/version.py alone
    advice = _gpu.torch_cpu_advice("2.5.1")
    assert "--pip-arg=--extra-index-url=https://download.pytorch.org/whl/cpu" in advice
    assert "torch==2.5.1+cpu" in advice


def test_a_cuda_torch_without_its_libraries_fails_the_pack_and_the_report_shows_the_runtime(
        tmp_path: Path) -> None:
    """A CUDA torch whose nvidia-* wheels were left out cannot import in Lambda: exit code 3 and
    the reason, not a layer reported fine; with --keep-gpu it is packed as it is. The report
    also shows the python/ runtime and which zstandard the function would import."""
    from lambdaslim.build._build import EXIT_LIMIT, BuildOptions, build

    site = tmp_path / "site"
    make_dist(site, "torch", "2.5.1", {"torch/__init__.py": b"", "torch/version.py": b"cuda = '12.4'\n"})
    make_dist(site, "nvidia-cublas-cu12", "12.4.5", {"nvidia/cublas/lib/libcublas.so.12": b"\0" * 7000})
    dropped = build(BuildOptions(output=str(tmp_path / "a.zip"), from_dir=str(site), level=1, quiet=True))
    text = dropped.render()
    assert dropped.exit_code == EXIT_LIMIT
    assert "would not import in Lambda:" in text and "torch 2.5.1: a CUDA build" in text
    assert "python/lambdaslim" in text and "`import zstandard` in the function: not in this layer" in text
    kept = build(BuildOptions(output=str(tmp_path / "b.zip"), from_dir=str(site), level=1, quiet=True,
                              keep_gpu=["*"]))
    assert kept.exit_code == 0 and not kept.unusable, kept.render()
    assert "torch 2.5.1 is a CUDA build" in kept.render()  # the CPU-wheel advice still stands
    make_dist(site, "triton", "3.1.0", {"triton/__init__.py": b""})  # optional for torch: not linked
    no_triton = build(BuildOptions(output=str(tmp_path / "c.zip"), from_dir=str(site), level=1, quiet=True,
                                   keep_gpu=["nvidia-cublas-cu12"]))
    assert [s[0] for s in no_triton.steps if s[0].startswith("no-gpu")] == ["no-gpu triton"]
    assert no_triton.exit_code == 0 and not no_triton.unusable, no_triton.render()


@pytest.fixture()
def named_site(tmp_path: Path) -> Path:
    """onnx's and numpy's cases in small: a test-folder library named by an entry point, a
    data folder named by one, discovery inside a test folder, and a plain imported test helper."""
    site = tmp_path / "site"
    make_dist(site, "lib", "1.0", {
        "lib/__init__.py": b"",
        "lib/backend/__init__.py": b"",
        "lib/backend/test/__init__.py": b"",
        "lib/backend/test/cmd_tools.py": b"from lib.backend.test.case import node\ndef main(): pass\n",
        "lib/backend/test/case/__init__.py": b"",
        "lib/backend/test/case/node.py": b"X = 1\n",
        "lib/backend/test/data/model.pb": b"\0" * 100,
        "lib/_core/lib/pkgconfig/lib.pc": b"prefix=x\n",
        "lib/_core/include/lib.h": b"int x;\n",
        "lib/plugins/__init__.py": b"",
        "lib/plugins/tests/__init__.py": b"",
        "lib/plugins/tests/registry.py": (b"import importlib, pkgutil\n"
                                          b"def load(pkg):\n    for _, n, _ in pkgutil.iter_modules(pkg.__path__):\n"
                                          b"        importlib.import_module(pkg.__name__ + '.' + n)\n"),
        "lib/plugins/tests/found_at_run_time.py": b"",
        "lib/plugins/use.py": b"from lib.plugins.tests import registry\n",
        "lib/testing.py": b"from lib.util.tests.helpers import H\n",
        "lib/util/__init__.py": b"",
        "lib/util/tests/__init__.py": b"",
        "lib/util/tests/helpers.py": b"H = 1\n",
        "lib/util/tests/test_big.py": b"import lib\n" + b"#" * 1000 + b"\n",
    })
    _entry_points(site, "lib-1.0.dist-info",
                  "[console_scripts]\nbackend-test-tools = lib.backend.test.cmd_tools:main\n\n"
                  "[pkg_config]\nlib = lib._core.lib.pkgconfig\n")
    return site


def test_pruning_spares_what_entry_points_and_discovery_name(named_site: Path) -> None:
    report = _prune.prune(str(named_site))
    left = {p.relative_to(named_site).as_posix() for p in named_site.rglob("*") if p.is_file()}
    assert {"lib/backend/test/cmd_tools.py", "lib/backend/test/case/node.py",
            "lib/backend/test/data/model.pb", "lib/_core/lib/pkgconfig/lib.pc",
            "lib/plugins/tests/found_at_run_time.py", "lib/util/tests/helpers.py"} <= left
    # the rest of the steps still work: a test module nothing names, headers
    assert "lib/util/tests/test_big.py" not in left and "lib/_core/include/lib.h" not in left
    assert "entry point backend-test-tools" in report.named["lib/backend/test/data/model.pb"]
    assert "(pkg_config)" in report.named["lib/_core/lib/pkgconfig/lib.pc"]
    assert "discovery" in report.named["lib/plugins/tests/found_at_run_time.py"]
    out = run_in_site(named_site, "\n".join([
        "import importlib.metadata as m, lib.plugins, lib.plugins.use as u",
        "for ep in m.entry_points(group='console_scripts') + m.entry_points(group='pkg_config'):",
        "    ep.load()",
        "import lib.plugins.tests as t; u.registry.load(t); import lib.testing; print('ok')",
    ]))
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr


def test_keep_is_the_escape_hatch_and_drop_still_drops(named_site: Path) -> None:
    report = _prune.prune(str(named_site), keep=["lib/util/tests"], drop=["lib/backend/test"])
    assert (named_site / "lib/util/tests/test_big.py").exists()
    assert not (named_site / "lib/backend/test").exists()
    assert not any(rel.startswith("lib/backend/test/") for rel in report.named)  # not reported as kept
    drop = next(s for s in report.steps if s.name == "drop")
    assert "lib/backend/test/data/model.pb" in drop.paths


def test_removed_record_collapses_folders_and_blames_the_step(named_site: Path) -> None:
    files = _prune.walk_files(str(named_site))
    owners = {rel: "lib-1.0.dist-info" for rel in files}
    report = _prune.prune(str(named_site), drop=["lib/backend/test", "lib/plugins/tests/registry.py"])
    _provenance.record(str(named_site), owners, files, [(s.name, s.paths) for s in report.steps])
    text = (named_site / "lib-1.0.dist-info" / _provenance.REMOVED).read_text().splitlines()
    assert "drop\tlib/backend/test/" in text and "drop\tlib/plugins/tests/registry.py" in text
    assert "tests\tlib/util/tests/test_big.py" in text and "headers\tlib/_core/include/" in text
    assert "lib/backend/test/data/model.pb" not in "\n".join(text)  # one line for the folder
    removed = _provenance.read(str(named_site))
    assert _provenance.blame(removed, module="lib.backend.test.cmd_tools") == ("drop", "lib/backend/test/")
    assert _provenance.blame(removed, module="lib.backend.test") == ("drop", "lib/backend/test/")
    assert _provenance.blame(removed, filename="/tmp/lambdaslim/x/lib/_core/include/lib.h") == \
        ("headers", "lib/_core/include/")
    assert _provenance.blame(removed, module="lib.plugins.tests.registry") == ("drop", "lib/plugins/tests/registry.py")
    assert _provenance.blame(removed, module="lib.plugins") is None
    assert _provenance.blame(removed, module="other") is None


def test_strippable_bytes_of_a_real_library_and_the_plan() -> None:
    import numpy

    libs = sorted(Path(numpy.__file__).parent.rglob("*.so"))
    assert libs and sum(_plan.strippable_bytes(str(p)) for p in libs) > 0
    assert _plan.strippable_bytes(__file__) == 0
    mb = 1_000_000
    rows = [_plan.Row("big", 200 * mb, 500 * mb, 30 * mb), _plan.Row("small", 90 * mb, 100 * mb, 0)]
    lines = _plan.render(rows, layer_bytes=290 << 20, layer_limit=250 << 20, tmp_bytes=600 << 20,
                         tmp_limit=512 << 20, stripped=False, gpu_kept=True)
    text = "\n".join(lines)
    assert "--stub big: -200.0 MB layer, -500.0 MB /tmp; --strip: about -30.0 MB /tmp" in text
    assert "smallest way under by stubbing the largest: --stub big (-200.0 MB)" in text
    # Sizes set against a limit are in its unit (AWS's "250 MB" is 250 MiB): 290 MiB of 250.
    assert "(layer 290.0 MB of 250 MB, /tmp 600.0 MB of 512 MB)" in text
    assert "--split does not help" in text and "drop --keep-gpu" in text
    lines = _plan.render(rows, layer_bytes=200 << 20, layer_limit=100 << 20, tmp_bytes=600 << 20,
                         tmp_limit=512 << 20, stripped=True, gpu_kept=False)
    text = "\n".join(lines)
    assert "--split 2: 2 layers of about 104.9 MB each" in text
    assert "--strip" not in text and "--keep-gpu" not in text


def test_tmp_check_follows_the_functions_ephemeral_storage() -> None:
    lay = LayerOut("layer.zip", 10, 100 << 20, 700 << 20, ["x"])
    (tmp,) = [c for c in check_limits([lay], _limits.UNZIPPED_LAYERS) if c.what.startswith("/tmp")]
    assert not tmp.ok and tmp.limit == _limits.DEFAULT_TMP
    (tmp,) = [c for c in check_limits([lay], _limits.UNZIPPED_LAYERS, 1024 << 20) if c.what.startswith("/tmp")]
    assert tmp.ok and tmp.limit == 1024 << 20


def test_keep_gpu_refuses_a_name_that_is_not_gpu_only(tmp_path: Path) -> None:
    """`pack --keep-gpu xgboost -o x.zip` would take xgboost for the distribution to keep."""
    from lambdaslim import PackError
    from lambdaslim.build._build import BuildOptions, build

    with pytest.raises(PackError, match="--keep-gpu xgboost: not a CUDA/GPU-only distribution"):
        build(BuildOptions(output=str(tmp_path / "x.zip"), requirements=["six"], keep_gpu=["xgboost"]))
    assert list(tmp_path.iterdir()) == []

