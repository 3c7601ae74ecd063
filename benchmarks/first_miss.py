"""What the first import miss costs once ``lambdaslim.bootstrap`` is imported.

The first name the normal machinery cannot find makes the hook read every layer's index (and
list the layer roots for zip bundles). Each run is a fresh ``python -S`` seeing only the
layer's python/ folder, with an empty extraction root; it times one failing import. Two
ways: with ``json`` already imported (as in Lambda, whose runtime imports it) and bare.

    python benchmarks/first_miss.py [--stack small] [-n 11]

Prints the best and median of N, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from _trees import STACKS, tree  # noqa: E402

CHILD = """\
import time{pre}
import lambdaslim.bootstrap
t = time.perf_counter()
try:
    import no_such_module_anywhere
except ImportError:
    pass
print("@@%r" % ((time.perf_counter() - t) * 1000))
"""


def once(opt: Path, tmp: Path, with_json: bool) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LAMBDASLIM_"))}
    env.update(PYTHONPATH=str(opt / "python"), PYTHONDONTWRITEBYTECODE="1",
               LAMBDASLIM_LAYER_ROOTS=str(opt), LAMBDASLIM_TMP=str(tmp))
    code = CHILD.format(pre=", json" if with_json else "")
    out = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(next(x for x in out.stdout.splitlines() if x.startswith("@@"))[2:])


def main() -> int:
    from lambdaslim.build import pack_tree

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stack", choices=sorted(STACKS), default="small")
    ap.add_argument("-n", type=int, default=11, help="runs of each way (best and median)")
    args = ap.parse_args()
    site = tree(args.stack)
    with tempfile.TemporaryDirectory(prefix="first-miss-") as w:
        work = Path(w)
        layer = work / "layer.zip"
        pack_tree(str(site), str(layer), level=3, quiet=True)
        with zipfile.ZipFile(layer) as zf:
            zf.extractall(work / "opt")
        times: dict[bool, list[float]] = {True: [], False: []}
        for i in range(args.n):  # interleaved
            for with_json in (True, False):
                times[with_json].append(once(work / "opt", work / f"tmp{i}-{with_json}", with_json))
    print(f"first import miss, {args.stack} stack ({' '.join(STACKS[args.stack])}), {args.n} fresh "
          f"`python -S` runs each, {os.cpu_count()} cpus:")
    for with_json, label in ((True, "json already imported (as in Lambda)"), (False, "bare python -S")):
        t = times[with_json]
        print(f"  {label:40} best {min(t):6.2f} ms   median {statistics.median(t):6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
