"""Eager extraction of a whole layer vs ``tar -xf`` of the same tree uncompressed (issue 9).

    python benchmarks/eager_vs_tar.py LAYER_ZIP [-n 3]

e.g. the reference stack: ``pip install --target site torch==2.13.0 numpy scipy pandas
scikit-learn`` then ``lambdaslim pack --from site --strip --level 3 -o layer.zip``.

The layer is unzipped once (as Lambda does into /opt). One disk-mode ``extract_all()`` builds the
reference tree, which is tarred once, uncompressed (``tree.tar``); a memory-mode one gives the
tree that mode writes (``tree-memory.tar``: native code and data files only). Then each round
runs, interleaved, every way once, each into a FRESH tmpfs mounted for that run (root; else a
fresh folder on /dev/shm, said in the output):

  tar            ``tar -xf tree.tar`` (the file-writing limit for the whole tree)
  eager-disk     a fresh ``python -S``: ``import lambdaslim.bootstrap; extract_all()`` with
                 ``LAMBDASLIM_PYTHON=disk`` (every file written: the same tree as ``tar``)
  tar-memory     ``tar -xf tree-memory.tar``
  eager-memory   the same with ``LAMBDASLIM_PYTHON=memory``

Times are wall clock from spawning the process to its exit, best of N; "call" is the time of
the ``extract_all()`` call alone, inside the child; peak RSS is the child's (through GNU time).
Target: eager-disk <= 1.3x tar (same tree, same file system, same run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _trees import FRESH, fresh_dir, size_of  # noqa: E402

CHILD = ("import time\nt = time.perf_counter()\nimport lambdaslim.bootstrap as b\nb.extract_all()\n"
         "print('@@%r' % (time.perf_counter() - t))\n")
# wait4's ru_maxrss of a child we spawn also counts this process's own peak (exec keeps the
# high-water mark of the memory map it replaces), so each run goes through GNU time, whose
# own few MB are what its child inherits; without it the figure includes this process's, and
# the report says so.
TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def run_rss(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(wall seconds, the child's own peak RSS in bytes, stdout) of one process."""
    if TIME:
        argv = [TIME, "-f", "@@RSS %M", *argv]
    started = time.perf_counter()
    with open(os.devnull, "rb") as devnull, tempfile.TemporaryFile("w+") as out, \
            tempfile.TemporaryFile("w+") as err:
        pid = os.posix_spawn(argv[0], argv, env if env is not None else dict(os.environ),
                             file_actions=[(os.POSIX_SPAWN_DUP2, devnull.fileno(), 0),
                                           (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                                           (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        errors = err.read()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{argv} failed:\n{errors[-3000:]}")
        rss_kb = usage.ru_maxrss
        if TIME:
            rss_kb = int(next(x for x in reversed(errors.splitlines()) if x.startswith("@@RSS "))[6:])
        return seconds, rss_kb * 1024, out.read()


def eager_env(opt: Path, tmp: Path, mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LAMBDASLIM_"))}
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(opt / "python"), LAMBDASLIM_LAYER_ROOTS=str(opt),
               LAMBDASLIM_TMP=str(tmp), LAMBDASLIM_PYTHON=mode)
    return env


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("layer", type=Path, help="a lambdaslim layer zip")
    ap.add_argument("-n", type=int, default=3, help="rounds (best of N)")
    args = ap.parse_args()
    python = shutil.which("python3", path=str(Path(sys.executable).parent)) or sys.executable
    best: dict[str, tuple[float, float, int]] = {}
    with tempfile.TemporaryDirectory(prefix="eager-vs-tar-", dir="/dev/shm") as w:
        work = Path(w)
        opt = work / "opt"
        with zipfile.ZipFile(args.layer) as zf:
            for info in zf.infolist():
                zf.extract(info, opt)
                perm = (info.external_attr >> 16) & 0o777
                if perm:
                    os.chmod(opt / info.filename, perm)
        trees: dict[str, tuple[Path, int, int]] = {}
        for mode in ("disk", "memory"):
            ref = work / f"ref-{mode}"
            run_rss([python, "-S", "-c", CHILD], eager_env(opt, ref, mode))
            tar = work / f"tree-{mode}.tar"
            subprocess.run(["tar", "-cf", str(tar), "-C", str(ref / "units"), "."], check=True)
            trees[mode] = (tar, *size_of(ref / "units"))
            shutil.rmtree(ref)
        ways = ["tar", "eager-disk", "tar-memory", "eager-memory"]
        for _ in range(args.n):
            for way in ways:  # interleaved: every round runs every way once
                with fresh_dir(work) as d:
                    if way.startswith("tar"):
                        tar = trees["memory" if way.endswith("memory") else "disk"][0]
                        s, rss, _ = run_rss(["/usr/bin/tar", "-xf", str(tar), "-C", str(d)])
                        call = s
                    else:
                        s, rss, out = run_rss([python, "-S", "-c", CHILD], eager_env(opt, d, way.split("-")[1]))
                        call = float(next(x for x in out.splitlines() if x.startswith("@@"))[2:])
                if way not in best or s < best[way][0]:
                    best[way] = (s, call, rss)
    print(f"{args.layer.name}: best of {args.n}, interleaved, each run into {FRESH['how']}, {os.cpu_count()} cpus; "
          + ("peak RSS through GNU time" if TIME else "peak RSS from wait4 (no /usr/bin/time: includes this process's)"))
    for mode in ("disk", "memory"):
        _, nbytes, nfiles = trees[mode]
        print(f"  tree written in {mode} mode: {nbytes / 1e6:.1f} MB in {nfiles} files")
    print(f"{'way':<14} {'seconds':>8} {'call':>7} {'peak RSS':>9} {'ratio':>6}")
    for way in ways:
        s, call, rss = best[way]
        base = best["tar-memory" if way.endswith("memory") else "tar"][0]
        print(f"{way:<14} {s:8.3f} {call:7.3f} {rss / 1e6:7.0f}MB {s / base:6.2f}")
    ratio = best["eager-disk"][0] / best["tar"][0]
    print(f"eager-disk / tar -xf (same tree): {ratio:.2f} (target <= 1.3); "
          f"eager-memory / tar -xf of the full tree: {best['eager-memory'][0] / best['tar'][0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
