"""What each build step saves on numpy + scipy + pandas + scikit-learn, and what bytecode buys.

    python benchmarks/prune.py [--level 19] [--runs 5]

Prints, for one tree installed for this interpreter and machine (wheels from the registry):
the installed size; the size after each default pruning step and after --strip; the size
after --keep-imported with a handler that only imports sklearn.linear_model; the packed layer
size of both; and the import time of ``sklearn.linear_model`` + ``scipy.stats`` + ``pandas``
from the pruned tree with and without shipped unchecked-hash bytecode (median of --runs fresh
interpreters each, PYTHONDONTWRITEBYTECODE=1 set explicitly so no run writes a cache).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from lambdaslim.build import _bytecode, _elf, _prune, _trace
from lambdaslim.build._build import prepare_runtime
from lambdaslim.build._pack import DEFAULT_LEVEL, pack_tree
from lambdaslim.build._resolve import Target, install
from lambdaslim._size import format_size

STACK = ["numpy", "scipy", "pandas", "scikit-learn"]
HANDLER = "import sklearn.linear_model\n"
IMPORTS = "import sklearn.linear_model, scipy.stats, pandas"


def size(tree: str) -> tuple[int, int]:
    files = _prune.walk_files(tree)
    return sum(files.values()), len(files)


def row(label: str, nbytes: int, files: int, base: int) -> None:
    print(f"  {label:<34} {format_size(nbytes):>10} {files:>7} files  {nbytes / base:6.1%} of installed")


def import_seconds(tree: str, runs: int) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    code = (f"import sys, time; sys.path.insert(0, {tree!r}); t = time.perf_counter(); {IMPORTS}; "
            "print(time.perf_counter() - t)")
    out = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True,
                              text=True, check=True)
        out.append(float(proc.stdout))
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--level", type=int, default=DEFAULT_LEVEL)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    target = Target.parse(py, "arm64" if _elf.host_machine() == "aarch64" else "x86_64")
    with tempfile.TemporaryDirectory(prefix="lambdaslim-bench-prune-") as work:
        site = os.path.join(work, "site")
        t = time.monotonic()
        install(target, site, requirements=STACK)
        print(f"{' + '.join(STACK)} for {target} (installed in {time.monotonic() - t:.1f} s)\n")
        base, nfiles = size(site)
        print("size after each step (cumulative):")
        row("installed", base, nfiles, base)
        tree = os.path.join(work, "pruned")
        shutil.copytree(site, tree)
        for step in _prune.DEFAULT_STEPS:
            _prune.prune(tree, steps=[step])
            row(f"- {step}", *size(tree), base)
        t = time.monotonic()
        stripped = _prune.strip_tree(tree, machine=target.machine)
        row("- strip (verified)", *size(tree), base)
        print(f"    {len(stripped.stripped)} libraries stripped, {len(stripped.kept)} kept as they were "
              f"(would not load once stripped or no gain), {time.monotonic() - t:.1f} s")

        traced = os.path.join(work, "traced")
        shutil.copytree(tree, traced)
        with open(os.path.join(work, "handler.py"), "w") as fh:
            fh.write(HANDLER)
        t = time.monotonic()
        _trace.trace_and_prune(traced, f"{sys.executable} handler.py", cwd=work)
        row("- keep-imported sklearn.linear_model", *size(traced), base)
        print(f"    (trace and re-run: {time.monotonic() - t:.1f} s)")

        with_pyc = os.path.join(work, "with-pyc")
        shutil.copytree(tree, with_pyc)
        bc = _bytecode.compile_tree(with_pyc, py)
        row("pruned + stripped + bytecode", *size(with_pyc), base)
        _bytecode.compile_tree(traced, py)

        runtime = os.path.join(work, "runtime")  # python/: as `lambdaslim pack --strip` ships it
        prepare_runtime(target, runtime, strip=True)
        print(f"\npacked (zstd level {args.level}):")
        for label, src in (("pruned + stripped + bytecode", with_pyc), ("keep-imported + bytecode", traced)):
            t = time.monotonic()
            res = pack_tree(src, os.path.join(work, "layer.zip"), level=args.level, quiet=True,
                            runtime_dir=runtime)
            packed = sum(u.packed_bytes for u in res.index.units)
            print(f"  {label:<34} {format_size(packed):>10} packed, layer zip "
                  f"{format_size(res.layer_zip_bytes)}  ({packed / base:.1%} of installed; "
                  f"{time.monotonic() - t:.0f} s)")

        print(f"\nimport time of `{IMPORTS}` (median of {args.runs} fresh interpreters):")
        import_seconds(tree, 1)  # warm the page cache for both trees alike
        import_seconds(with_pyc, 1)
        without = import_seconds(tree, args.runs)
        with_ = import_seconds(with_pyc, args.runs)
        print(f"  sources only                       {without:6.2f} s")
        print(f"  shipped bytecode ({bc.compiled} .pyc)       {with_:6.2f} s   ratio {with_ / without:.2f}x "
              f"({without - with_:+.2f} s saved per cold start)")


if __name__ == "__main__":
    main()
