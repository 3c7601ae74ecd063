"""Cost of the warm-start tree check (issue 10), against a full extraction in the same run.

    python benchmarks/tree_check.py [--site DIR] [--repeat 5]

Packs a site-packages folder (default: the biggest cached test site), extracts everything
once into a fresh folder under /dev/shm (tmpfs), then, in a fresh interpreter per repeat,
times what a warm start does per published tree before reusing it: the marker alone (what
was checked before issue 10), the file table's validation, and the lstat of every file.
Prints the medians, the cost per file, the figure extrapolated to the reference stack's
16,830 files, and the ratio to the cold full extraction measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _campaign import ROOT, pack

REFERENCE_FILES = 16_830

PROBE = r"""
import json, os, sys, time
from lambdaslim._runtime._budget import Budget
from lambdaslim._runtime._format import read_index
from lambdaslim._runtime._store import is_complete
opt, root = sys.argv[1], sys.argv[2]
layer = os.path.join(opt, "lambdaslim", os.listdir(os.path.join(opt, "lambdaslim"))[0])
budget = Budget(root)
index = read_index(layer, lazy=True)
t0 = time.perf_counter()
for u in index.units:
    assert is_complete(budget, u.key, u.sha256)
t1 = time.perf_counter()
for u in index.units:
    u.files
t2 = time.perf_counter()
for u in index.units:
    assert is_complete(budget, u.key, u.sha256, lambda u=u: [(f.path, f.size) for f in u.files])
t3 = time.perf_counter()
print(json.dumps({"marker": t1 - t0, "validate": t2 - t1, "check": t3 - t2,
                  "files": sum(len(u.files) for u in index.units)}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cache = Path.home() / ".cache" / "lambdaslim-tests"
    sites = sorted((p for p in cache.glob("site-*") if p.is_dir()), key=lambda p: -sum(1 for _ in p.rglob("*")))
    ap.add_argument("--site", default=str(sites[0]) if sites else None)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDASLIM_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    with tempfile.TemporaryDirectory(prefix="lambdaslim-treecheck-", dir="/dev/shm") as work:
        from helpers import unzip_layer

        opt = unzip_layer(pack(Path(args.site), Path(work) / "layer.zip", part_bytes=32 << 20), Path(work) / "opt")
        root = Path(work) / "root"
        cold = subprocess.run([sys.executable, "-c", "import time, lambdaslim.bootstrap as b\nt = time.perf_counter()\n"
                               "b.extract_all()\nprint(time.perf_counter() - t)"],
                              env={**env, "LAMBDASLIM_LAYER_ROOTS": str(opt), "LAMBDASLIM_TMP": str(root),
                                   "LAMBDASLIM_PYTHON": "disk"},  # disk trees: every file checked (the worst case)
                              capture_output=True, text=True, check=True)
        full = float(cold.stdout)
        runs = [json.loads(subprocess.run([sys.executable, "-c", PROBE, str(opt), str(root)], env=env,
                                          capture_output=True, text=True, check=True).stdout)
                for _ in range(args.repeat)]
    files = runs[0]["files"]
    med = {k: statistics.median(r[k] for r in runs) for k in ("marker", "validate", "check")}
    added = med["validate"] + med["check"]
    print(f"site {args.site}: {files} files; cold extract_all (tmpfs) {full:.2f} s")
    print(f"warm start per process, median of {args.repeat}: marker only {med['marker'] * 1e3:.1f} ms; "
          f"table validation {med['validate'] * 1e3:.1f} ms; lstat of every file {med['check'] * 1e3:.1f} ms")
    print(f"added by the check: {added * 1e3:.1f} ms = {added / files * 1e6:.2f} us per file = "
          f"{added / full * 100:.1f}% of a cold extraction; at {REFERENCE_FILES} files (reference stack): "
          f"~{added / files * REFERENCE_FILES * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
