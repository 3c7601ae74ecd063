"""Full-disk campaign (issue 10): a real size-limited tmpfs filled by another writer mid-extraction.

    python benchmarks/campaign_full_disk.py [--cases 60] [--seed 1]

The script moves into a private mount namespace (lambdaslim.testing's tmpfs helper, as the
``lambda_tmp`` fixture does) and mounts a 12 MiB tmpfs. Each case: a fresh interpreter
imports the layer's distributions (lazily or eagerly, ``LAMBDASLIM_PYTHON`` memory or disk
at random) into the tmpfs while another process
fills the same tmpfs at a random moment with a random amount. The import must succeed or
fail with our error (StorageBudgetError, or an OSError naming the file it could not write);
after it, nothing partial may be published (every tree in units/ passes the tree check) and
staging/ must be empty. Then the filler's file is deleted and a clean process must import
everything with exact file contents.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _campaign import ROOT, Tally, in_tree, make_site, pack, tree_files

SIZE = 12 << 20
CHILD = """
import json, sys
try:
    import lambdaslim.bootstrap as b
    if sys.argv[1] == "eager":
        b.extract_all()
    for name in sys.argv[2:]:
        __import__(name)
    print(json.dumps({"ok": True}))
except BaseException as exc:
    from lambdaslim._errors import LambdaslimError
    ours = isinstance(exc, LambdaslimError) or (isinstance(exc, OSError) and bool(exc.filename))
    import traceback
    where = traceback.extract_tb(exc.__traceback__)[-1]
    print(json.dumps({"ok": False, "ours": ours,
                      "error": "%s: %s at %s:%s" % (type(exc).__name__, exc, where.filename, where.lineno)}))
"""
FILLER = """
import os, sys, time
time.sleep(float(sys.argv[2]))
left = int(sys.argv[3])
with open(sys.argv[1], "wb") as fh:
    try:
        while left > 0:
            left -= fh.write(b"\\0" * min(left, 1 << 20))
            fh.flush()
    except OSError:
        pass
"""


class Campaign:
    def __init__(self, work: Path, mount: Path, seed: int, size: int = SIZE) -> None:
        from helpers import unzip_layer

        self.rng, self.size = random.Random(seed), size
        self.content = make_site(work / "site", seed, dists=3, files=30, max_size=96 << 10)
        self.opt = unzip_layer(pack(work / "site", work / "layer.zip"), work / "opt")
        self.names = sorted({rel.split("/")[0] for rel in self.content})
        self.mount, self.root = mount, mount / "lambdaslim"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDASLIM_", "PYTHON"))}
        self.env.update(PYTHONPATH=str(self.opt / "python"), PYTHONDONTWRITEBYTECODE="1",
                        LAMBDASLIM_LAYER_ROOTS=str(self.opt), LAMBDASLIM_TMP=str(self.root))
        started = time.monotonic()
        self._child("eager")
        self.full = time.monotonic() - started

    def _child(self, mode: str, python: str = "memory") -> dict[str, object]:
        proc = subprocess.run([sys.executable, "-S", "-c", CHILD, mode, *self.names],
                              env={**self.env, "LAMBDASLIM_PYTHON": python}, capture_output=True, text=True,
                              timeout=120)
        lines = proc.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else {"ok": False, "ours": False, "error": proc.stderr[-300:]}

    def case(self) -> tuple[str, str]:
        rng = self.rng
        shutil.rmtree(self.root, ignore_errors=True)
        filler_path = self.mount / "filler"
        fill = rng.randrange(self.size // 2, self.size)
        filler = subprocess.Popen([sys.executable, "-S", "-c", FILLER, str(filler_path),
                                   str(rng.uniform(0, self.full)), str(fill)])
        python = rng.choice(["memory", "disk"])
        out = self._child(rng.choice(["lazy", "eager"]), python)
        filler.wait(timeout=60)
        if out["ok"]:
            verdict, detail = "accepted", ""
        elif out.get("ours"):
            verdict, detail = "refused", str(out["error"])
        else:
            return "defect", f"foreign error on a full disk: {out['error']}"
        partial = self._partial()
        if partial:
            return "defect", f"after {out.get('error')}: {partial}"
        filler_path.unlink(missing_ok=True)  # space is back
        again = self._child("lazy", python)
        if not again["ok"]:
            return "defect", f"the next process failed once space was back: {again['error']}"
        wrong = self._wrong()
        if wrong:
            return "defect", f"{len(wrong)} files differ, e.g. {wrong[0]}"
        return verdict, detail

    def _partial(self) -> str:
        from lambdaslim._runtime._budget import Budget
        from lambdaslim._runtime._format import read_index
        from lambdaslim._runtime._store import is_complete

        staging = sorted(os.listdir(self.root / "staging")) if (self.root / "staging").exists() else []
        if staging:
            return f"staging/ holds {staging}"
        budget = Budget(str(self.root))
        layer = next((self.opt / "lambdaslim").iterdir())
        keys = {u.key: u for u in read_index(str(layer)).units}
        units = sorted(os.listdir(self.root / "units")) if (self.root / "units").exists() else []
        for key in units:
            unit = keys.get(key.removesuffix(".m"))
            if unit is None or not is_complete(budget, key, unit.sha256, lambda u=unit, k=key: tree_files(u, k)):
                return f"units/{key} is published but not whole"
        return ""

    def _wrong(self) -> list[str]:
        wrong = []
        for tree in (self.root / "units").iterdir():  # a tree of each mode may be there: all checked
            wrong += [rel for rel, data in self.content.items()
                      if rel.split("/")[0] == tree.name.split("-")[0] and in_tree(rel, tree.name)
                      and (not (tree / rel).is_file() or (tree / rel).read_bytes() != data)]
        return wrong


def run(cases: int, seed: int, work: Path) -> Tally:
    """Needs a private mount namespace: call only in a process that may enter one."""
    from lambdaslim.testing._tmpfs import enter_private_namespace, mount_tmpfs, unmount

    reason = enter_private_namespace()
    if reason is not None:
        raise SystemExit(f"cannot mount a tmpfs here: {reason}")
    mount = work / "mnt"
    mount.mkdir()
    mount_tmpfs(str(mount), SIZE)
    try:
        campaign = Campaign(work, mount, seed)
        tally = Tally("full disk")
        for _ in range(cases):
            tally.add(*campaign.case())
        return tally
    finally:
        unmount(str(mount))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    with tempfile.TemporaryDirectory(prefix="lambdaslim-full-") as work:
        return run(args.cases, args.seed, Path(work)).report()


if __name__ == "__main__":
    raise SystemExit(main())
