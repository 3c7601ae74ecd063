"""Fuzz campaign (issue 10): mutated indexes, parts and zip bundles through the reader.

    python benchmarks/campaign_fuzz.py [--cases 100000] [--seed 1] [--work DIR]

Each case mutates one thing of a small packed layer or zip bundle (bit flips, truncation,
inserted bytes, a field's value or type changed, a key deleted) and runs what the runtime
runs: read and validate the index, extract every unit (or the bundle) into a fresh folder,
in both modes: every file (``LAMBDASLIM_PYTHON=disk``), and the disk parts only with every
code file read from memory (``memory``). A share of the index cases targets format 2's
fields (a part's ``kind``, ``code_bytes``, ``native_disk_bytes``).
Verdicts (see _campaign.py): refused with our error, accepted (then the tree must be exact
where the bytes are covered by a checksum), or a defect: a foreign exception, a case over the
time bound (a hang), anything written outside the extraction root.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import tempfile
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _campaign import Tally, make_site, ours, outside_writes, pack

CASE_SECONDS = 5.0

VALUES: list[Any] = [-1, 0, 1, 2 ** 31, 2 ** 64, 10 ** 40, 1.5, True, None, "", "x", "../../x", "/abs",
                     "a" * 5000, "\udc80", [], {}, [[]], ["a-b"], "deep/" * 2000 + "x", 0o777, "0" * 64]


DEEP = "@@deep@@"


class Hang(Exception):
    pass


def _alarm(_sig: int, _frame: Any) -> None:
    raise Hang()


def _mutate_json(rng: random.Random, raw: Any) -> Any:
    """Change one value (type, size, path) or delete one key somewhere in the index."""
    raw = json.loads(json.dumps(raw))
    node, steps = raw, rng.randrange(1, 6)
    parent: Any = None
    key: Any = None
    for _ in range(steps):
        if isinstance(node, dict) and node:
            parent, key = node, rng.choice(sorted(node))
        elif isinstance(node, list) and node:
            parent, key = node, rng.randrange(len(node))
        else:
            break
        node = parent[key]
    if parent is None:
        return rng.choice(VALUES)
    action = rng.random()
    if action < 0.15 and isinstance(parent, dict):
        del parent[key]
    elif action < 0.3 and isinstance(node, int) and not isinstance(node, bool):
        parent[key] = node + rng.choice([-1, 1, 4096, -node - 1, 300 << 20])
    elif action < 0.35:
        parent[key] = DEEP  # replaced by 3,000 nested brackets once serialised
    elif action < 0.45 and isinstance(parent, list):
        parent.append(json.loads(json.dumps(parent[key])))  # a duplicate entry
    else:
        parent[key] = rng.choice(VALUES)
    return raw


FORMAT2_VALUES: list[Any] = ["code", "meta", "disk", "exec", "", None, 1, ["code"], {}]


def _mutate_format2(rng: random.Random, raw: Any) -> Any:
    """Change one of format 2's fields: a part's kind, or a unit's code/native disk bytes."""
    raw = json.loads(json.dumps(raw))
    unit = rng.choice(raw["units"])
    if rng.random() < 0.5:
        part = rng.choice(unit["parts"])
        if rng.random() < 0.15:
            del part["kind"]
        else:
            part["kind"] = rng.choice(FORMAT2_VALUES)
    else:
        field = rng.choice(["code_bytes", "native_disk_bytes"])
        if rng.random() < 0.15:
            del unit[field]
        elif rng.random() < 0.5 and isinstance(unit[field], int):
            unit[field] += rng.choice([-1, 1, 4096, -unit[field] - 1, 300 << 20])
        else:
            unit[field] = rng.choice(VALUES)
    return raw


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    blob = bytearray(data)
    kind = rng.random()
    if kind < 0.5 and blob:
        for _ in range(rng.randrange(1, 9)):
            blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
    elif kind < 0.8:
        del blob[rng.randrange(len(blob) + 1):]
    else:
        at = rng.randrange(len(blob) + 1)
        blob[at:at] = rng.randbytes(rng.randrange(1, 64))
    return bytes(blob)


class Campaign:
    def __init__(self, work: Path, seed: int) -> None:
        from helpers import unzip_layer

        self.work, self.seed = work, seed
        self.site = work / "site"
        self.content = make_site(self.site, seed, dists=2, files=10, max_size=8 << 10)
        unzip_layer(pack(self.site, work / "layer.zip", part_bytes=16 << 10), work / "opt")
        self.layer = next((work / "opt" / "lambdaslim").iterdir())
        self.index_bytes = (self.layer / "index.json").read_bytes()
        self.index_raw = json.loads(self.index_bytes)
        self.parts = sorted(p for p in (self.layer / "parts").iterdir())
        self.part_bytes = {p: p.read_bytes() for p in self.parts}
        self.bundle_path = work / "bundle.zip"
        with zipfile.ZipFile(self.bundle_path, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel, data in sorted(self.content.items()):
                zf.writestr(rel, data)
        self.bundle_bytes = self.bundle_path.read_bytes()
        self.root = work / "root"
        self.root.mkdir()
        self.allowed = set(os.listdir(work))

    def case(self, rng: random.Random, reader: Callable[[str], None] | None = None) -> tuple[str, str]:
        """One mutated input through the reader; returns (verdict, detail)."""
        which = rng.random()
        restore: Callable[[], None]
        if which < 0.1:
            target, data = self.layer / "index.json", json.dumps(_mutate_format2(rng, self.index_raw)).encode()
            kind, exact = "index-format2", False
        elif which < 0.4:
            target, data = self.layer / "index.json", json.dumps(_mutate_json(rng, self.index_raw)).replace(
                f'"{DEEP}"', "[" * 3000 + "]" * 3000).encode()
            kind, exact = "index-json", False
        elif which < 0.6:
            target, data, kind, exact = self.layer / "index.json", _mutate_bytes(rng, self.index_bytes), "index-bytes", False
        elif which < 0.8:
            target = rng.choice(self.parts)
            data, kind, exact = _mutate_bytes(rng, self.part_bytes[target]), "part", True
        else:
            target, data, kind, exact = self.bundle_path, _mutate_bytes(rng, self.bundle_bytes), "bundle", True
        original = target.read_bytes()
        target.write_bytes(data)
        restore = lambda: target.write_bytes(original)  # noqa: E731
        dest = self.root / "dest"
        self.from_memory: dict[str, bytes] = {}
        signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
        try:
            self._read(kind, str(dest)) if reader is None else reader(str(dest))
            verdict, detail = "accepted", ""
            if exact and not self._exact(dest, strict=kind == "part"):
                verdict, detail = "defect", f"{kind}: accepted but the tree differs"
        except Hang:
            verdict, detail = "defect", f"{kind}: over {CASE_SECONDS} s (a hang)"
        except BaseException as exc:  # noqa: BLE001 - classifying is the point
            verdict = "refused" if ours(exc) else "defect"
            where = traceback.extract_tb(exc.__traceback__)[-1]
            detail = f"{kind}: {type(exc).__name__}: {str(exc)[:200]} at {where.filename}:{where.lineno}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            restore()
        stray = outside_writes(self.work, self.allowed) + outside_writes(self.root, {"dest"})
        if stray:
            verdict, detail = "defect", f"{kind}: wrote outside the root: {stray}"
            for name in stray:
                shutil.rmtree(self.work / name, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)
        return verdict, detail

    def _read(self, kind: str, dest: str) -> None:
        from lambdaslim._runtime._discover import scan
        from lambdaslim._runtime._extract import extract_unit
        from lambdaslim._runtime._format import DISK, read_index
        from lambdaslim._runtime._memory import CACHE, UnitFiles
        from lambdaslim._runtime._zipbundle import ZipBundle

        if kind == "bundle":
            ZipBundle(str(self.bundle_path)).extract(dest)
            return
        scan([str(self.work / "opt")])  # the finder's view: sets broken layers aside, never raises
        index = read_index(str(self.layer))
        CACHE.clear()  # parts change from case to case here (never in a real process)
        for n, unit in enumerate(index.units):
            extract_unit(index, unit, os.path.join(dest, str(n)), workers=1)
            # memory mode: the disk parts into units/<key>.m, the code read from memory
            extract_unit(index, unit, os.path.join(dest, "m", str(n)), workers=1, kinds=frozenset([DISK]))
            assert unit.code_bytes >= 0 and unit.native_disk_bytes >= 0
            files = UnitFiles(index, unit)
            self.from_memory.update((rel, files.read(rel)) for rel in files.code)

    def _exact(self, dest: Path, strict: bool) -> bool:
        """Parts are covered by sha256: the tree must be exact. A zip's CRCs cover contents,
        not names: a member renamed by a flipped bit may land elsewhere (inside the root),
        but no file may hold other bytes than the packed ones."""
        got: dict[str, bytes] = {}
        memory: list[tuple[str, bytes]] = list(self.from_memory.items())  # memory mode's code reads
        for path in dest.rglob("*"):
            if path.is_file():
                rel = str(path.relative_to(dest))
                if rel.startswith("m/"):  # a memory-mode tree: its files, checked like the code reads
                    memory.append((rel.split("/", 2)[2], path.read_bytes()))
                    continue
                rel = rel.split("/", 1)[1] if rel.split("/", 1)[0].isdigit() else rel
                got[rel] = path.read_bytes()
        if strict:
            return all(got.get(rel) == data for rel, data in self.content.items()) and \
                all(data == self.content.get(rel) for rel, data in memory if rel in self.content)
        return all(data == self.content[rel] or data in self.content.values()
                   for rel, data in got.items() if rel in self.content)


def run(cases: int, seed: int, work: Path, reader: Callable[[str], None] | None = None) -> Tally:
    import logging

    logging.getLogger("lambdaslim").setLevel(logging.CRITICAL)  # set-aside warnings: expected here
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        campaign = Campaign(work, seed)
        rng = random.Random(seed)
        tally = Tally("fuzz")
        for _ in range(cases):
            tally.add(*campaign.case(rng, reader))
        return tally
    finally:
        signal.signal(signal.SIGALRM, previous)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lambdaslim-fuzz-", dir=args.work) as work:
        return run(args.cases, args.seed, Path(work)).report()


if __name__ == "__main__":
    raise SystemExit(main())
