"""Kill campaign (issue 10): SIGKILL at random moments of lazy and eager extraction.

    python benchmarks/campaign_kill.py [--kills 100] [--seed 1] [--work DIR]

Each round starts 1-8 fresh interpreters sharing one extraction root; each imports the
layer's distributions lazily (in a random order) or extracts everything eagerly, with
``LAMBDASLIM_PYTHON`` memory or disk at random (memory trees ``units/<key>.m`` hold the data
files only). At a random moment within a full extraction's time, a random non-empty subset
is SIGKILLed; the others must finish without error. Then a clean process in each mode
imports everything: every import must work (0 corrupt imports), every file must read back
as exactly the packed bytes through the module's loader (the tree in disk mode, memory for
code in memory mode), and staging/ and reserve/ must be empty after it (0 leftovers).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _campaign import ROOT, Tally, make_site, pack

CHILD = """
import sys
import lambdaslim.bootstrap as b
if sys.argv[1] == "eager":
    b.extract_all()
for name in sys.argv[2:]:
    __import__(name)
"""
CLEAN = """
import hashlib, json, os, sys
import lambdaslim.bootstrap as b
mods = {name: __import__(name) for name in sys.argv[2:]}
files = {}
for line in open(sys.argv[1]):
    rel = line.strip()
    mod = mods[rel.split("/")[0]]
    tree = os.path.dirname(os.path.dirname(mod.__file__))
    try:
        files[rel] = hashlib.sha256(mod.__spec__.loader.get_data(os.path.join(tree, rel))).hexdigest()
    except OSError:
        files[rel] = None
print(json.dumps({"mods": {n: m.N for n, m in mods.items()}, "files": files}))
"""


def _env(opt: Path, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDASLIM_", "PYTHON"))}
    env.update(PYTHONPATH=str(opt / "python"), PYTHONDONTWRITEBYTECODE="1",
               LAMBDASLIM_LAYER_ROOTS=str(opt), LAMBDASLIM_TMP=str(root))
    return env


class Campaign:
    def __init__(self, work: Path, seed: int) -> None:
        from helpers import unzip_layer

        self.work, self.rng = work, random.Random(seed)
        self.content = make_site(work / "site", seed)
        self.opt = unzip_layer(pack(work / "site", work / "layer.zip"), work / "opt")
        self.names = sorted({rel.split("/")[0] for rel in self.content})
        self.listing = work / "files.txt"
        self.listing.write_text("".join(rel + "\n" for rel in sorted(self.content)))
        self.root = work / "root"
        self.env = _env(self.opt, self.root)
        started = time.monotonic()
        self._spawn("eager").wait()
        self.full = time.monotonic() - started  # one eager extraction, interpreter start included
        shutil.rmtree(self.root)

    def _spawn(self, mode: str, python: str = "memory") -> subprocess.Popen[bytes]:
        order = self.names[:]
        self.rng.shuffle(order)
        return subprocess.Popen([sys.executable, "-S", "-c", CHILD, mode, *order],
                                env={**self.env, "LAMBDASLIM_PYTHON": python},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def round(self, tally: Tally) -> int:
        """One round; returns the number of processes killed."""
        rng = self.rng
        if rng.random() < 0.8:
            shutil.rmtree(self.root, ignore_errors=True)  # else: kill over what earlier rounds left
        procs = [self._spawn(rng.choice(["lazy", "eager"]), rng.choice(["memory", "disk"]))
                 for _ in range(rng.randint(1, 8))]
        time.sleep(rng.uniform(0.02, self.full * 1.2))
        doomed = rng.sample(procs, rng.randint(1, len(procs)))
        killed = 0
        for p in doomed:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                killed += 1
        for p in procs:
            _, err = p.communicate(timeout=120)
            if p not in doomed:
                tally.add("accepted" if p.returncode == 0 else "defect",
                          f"a process that was not killed failed: {err.decode()[-300:]}")
        self._clean(tally)
        return killed

    def _clean(self, tally: Tally, modes: tuple[str, ...] = ("memory", "disk")) -> None:
        import hashlib
        import json

        for python in modes:
            proc = subprocess.run([sys.executable, "-S", "-c", CLEAN, str(self.listing), *self.names],
                                  env={**self.env, "LAMBDASLIM_PYTHON": python}, capture_output=True, timeout=120)
            if proc.returncode != 0:
                tally.add("defect", f"the clean process ({python}) failed: {proc.stderr.decode()[-400:]}")
                continue
            out = json.loads(proc.stdout)
            wrong = [rel for rel, data in self.content.items()
                     if out["files"].get(rel) != hashlib.sha256(data).hexdigest()]
            leftovers = [f"{d}/{n}" for d in ("staging", "reserve") for n in _ls(self.root / d)]
            if wrong:
                tally.add("defect", f"{len(wrong)} files differ after kills ({python}), e.g. {wrong[0]}")
            elif leftovers:
                tally.add("defect", f"leftovers after a clean process ({python}): {leftovers[:5]}")
            else:
                tally.add("accepted")


def _ls(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def run(kills: int, seed: int, work: Path) -> Tally:
    campaign = Campaign(work, seed)
    tally = Tally("kill")
    done = 0
    while done < kills:
        done += campaign.round(tally)
    tally.name = f"kill ({done} SIGKILLs, {tally.tried} checks)"
    return tally


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    with tempfile.TemporaryDirectory(prefix="lambdaslim-kill-", dir=args.work) as work:
        return run(args.kills, args.seed, Path(work)).report()


if __name__ == "__main__":
    raise SystemExit(main())
