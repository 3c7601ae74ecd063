"""Extraction speed, laziness, import time and memory of the bootstrap, in one run (issue 3).

    python benchmarks/extract.py [--stack torch] [--level 19] [--repeat 3]

Every extraction writes into a fresh tmpfs (mounted per run when root; else a fresh folder
on disk after dropping caches, said in the output), as the measurements' pitfalls advise.
Baselines on the same tree: zipfile.ZipFile.extractall of a deflate zip (the zip-in-layer
trick), ``tar -I 'zstd -d -T0' -xf`` of a tar.zst, ``tar -xf`` of the plain tar (the
file-writing limit). Targets: full extraction >= 3x zipfile and no slower than tar+zstd;
lazy import of one small distribution < 5% of a full extraction; ``import
lambdaslim.bootstrap`` < 15 ms cumulative without boto3/botocore; peak RSS during a full
extraction < 64 MB above the interpreter's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _trees import CACHE, FRESH, fresh_dir, size_of, tree  # noqa: E402

from lambdaslim.build._pack import DEFAULT_LEVEL, pack_tree  # noqa: E402

def timed(fn, repeat: int, base: Path) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        with fresh_dir(base) as d:
            start = time.perf_counter()
            fn(d)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


CHILD = r"""
import json, os, sys, time
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
t0 = time.perf_counter()
import lambdaslim.bootstrap as b
import zstandard, filelock, concurrent.futures  # what an extraction loads anyway: not its memory
b.finder().entries()
base = hwm()
t1 = time.perf_counter()
if sys.argv[1] == 'all':
    b.extract_all()
else:
    __import__(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({'seconds': t2 - t1, 'index_seconds': t1 - t0, 'hwm_base': base, 'hwm': hwm()}))
"""


def child(opt: Path, tmp: Path, what: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(opt / "python"), "LAMBDASLIM_LAYER_ROOTS": str(opt),
           "LAMBDASLIM_TMP": str(tmp)}
    out = subprocess.run([sys.executable, "-S", "-c", CHILD, what], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def packed_layer(src: Path, stack: str, level: int) -> Path:
    """The packed layer of ``src``, cached by stack, level and the packer's own source code."""
    import hashlib

    import lambdaslim

    code = hashlib.sha256()
    pkg = Path(lambdaslim.__file__).parent
    for name in ("_pack.py", "_format.py", "_scan.py"):
        code.update((pkg / name).read_bytes())
    layer = CACHE / f"{stack}-level{level}-{code.hexdigest()[:12]}.zip"
    if layer.exists():
        print(f"packed layer (cached): {layer.stat().st_size / 1e6:.1f} MB, level {level}")
        return layer
    t = time.perf_counter()
    partial = layer.with_suffix(".partial.zip")
    pack_tree(str(src), str(partial), level=level, quiet=True)
    partial.rename(layer)
    print(f"packed at level {level} in {time.perf_counter() - t:.0f} s: {layer.stat().st_size / 1e6:.1f} MB")
    return layer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stack", default="torch")
    ap.add_argument("--level", type=int, default=DEFAULT_LEVEL)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--small", default="threadpoolctl", help="a small module of the stack for the lazy figure")
    args = ap.parse_args()
    src = tree(args.stack)
    nbytes, nfiles = size_of(src)
    print(f"tree: {args.stack}: {nbytes / 1e6:.1f} MB in {nfiles} files; {os.cpu_count()} cores")
    work = Path(tempfile.mkdtemp(prefix="lambdaslim-bench-"))
    try:
        layer = packed_layer(src, args.stack, args.level)
        opt = work / "opt"
        with zipfile.ZipFile(layer) as zf:
            zf.extractall(opt)
        dzip = work / "tree.zip"
        with zipfile.ZipFile(dzip, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for dirpath, _, filenames in os.walk(src):
                for f in filenames:
                    full = Path(dirpath) / f
                    zf.write(full, full.relative_to(src).as_posix())
        tar = work / "tree.tar"
        subprocess.run(["tar", "-cf", str(tar), "-C", str(src), "."], check=True)
        tzst = work / "tree.tar.zst"
        subprocess.run(["zstd", "-q", "-T0", "-3", str(tar), "-o", str(tzst)], check=True)
        base = work / "runs"
        base.mkdir()

        results: dict[str, float] = {}
        results["zipfile.extractall (deflate-6 zip)"] = timed(
            lambda d: zipfile.ZipFile(dzip).extractall(d), args.repeat, base)
        results["tar -I 'zstd -d -T0' -xf"] = timed(
            lambda d: subprocess.run(["tar", "-I", "zstd -d -T0", "-xf", str(tzst), "-C", str(d)], check=True),
            args.repeat, base)
        results["tar -xf (uncompressed: the file-writing limit)"] = timed(
            lambda d: subprocess.run(["tar", "-xf", str(tar), "-C", str(d)], check=True), args.repeat, base)
        full_runs, rss = [], []
        for _ in range(args.repeat):
            with fresh_dir(base) as d:
                r = child(opt, d, "all")
                full_runs.append(r["seconds"])
                rss.append(r["hwm"] - r["hwm_base"])
        results["lambdaslim extract_all()"] = statistics.median(full_runs)
        lazy_runs, index_runs = [], []
        for _ in range(args.repeat):
            with fresh_dir(base) as d:
                r = child(opt, d, args.small)
                lazy_runs.append(r["seconds"])
                index_runs.append(r["index_seconds"])
        lazy = statistics.median(lazy_runs)

        print(f"\nextraction of the whole tree ({FRESH['how']}, median of {args.repeat}):")
        for name, secs in results.items():
            print(f"  {name:50} {secs:6.2f} s  {nbytes / secs / 1e6:7.0f} MB/s")
        full = results["lambdaslim extract_all()"]
        zipx = results["zipfile.extractall (deflate-6 zip)"]
        tarz = results["tar -I 'zstd -d -T0' -xf"]
        print(f"\n  speed-up over zipfile.extractall: {zipx / full:.2f}x (target >= 3x)")
        print(f"  lambdaslim / tar+zstd time:       {full / tarz:.2f} (target <= 1.00)")
        print(f"\nlazy: first import of {args.small!r}: {lazy * 1000:.0f} ms "
              f"= {100 * lazy / full:.1f}% of a full extraction (target < 5%); "
              f"reading the indexes took {statistics.median(index_runs) * 1000:.0f} ms")
        print(f"peak RSS during a full extraction: {max(rss) / 1e6:.1f} MB above the interpreter's (target < 64 MB)")

        imp = []
        modules: set[str] = set()
        for _ in range(7):
            p = subprocess.run([sys.executable, "-S", "-X", "importtime", "-c", "import lambdaslim.bootstrap"],
                               env={**os.environ, "PYTHONPATH": str(opt / "python")},
                               capture_output=True, text=True, check=True)
            last = [ln for ln in p.stderr.splitlines() if ln.rstrip().endswith("lambdaslim.bootstrap")][-1]
            imp.append(int(last.split("|")[1]) / 1000)
            modules |= {ln.split("|")[-1].strip() for ln in p.stderr.splitlines() if "|" in ln}
        heavy = sorted(m for m in modules if m.split(".")[0] in ("boto3", "botocore", "zstandard", "filelock"))
        print(f"import lambdaslim.bootstrap: {statistics.median(imp):.1f} ms cumulative (median of 7, "
              f"python -S; target < 15 ms); heavy modules imported: {heavy or 'none'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
