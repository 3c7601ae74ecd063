"""What every hardening campaign (issue 10) shares: the tally, the verdict, a small layer.

A case ends one of three ways: *accepted* (the input was harmless, e.g. a flipped bit in
JSON whitespace, and the result is exact), *refused* with one of our errors (ArchiveError,
StorageBudgetError, ObjectChangedError, or an OSError naming its path), or a *defect*:
anything else (a foreign exception, a hang, a byte written outside the root, a partial or
wrong tree, mixed bytes). Each script prints the three counts; defects must be 0.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))


@dataclass
class Tally:
    name: str
    tried: int = 0
    accepted: int = 0
    refused: int = 0
    defects: list[str] = field(default_factory=list)

    def add(self, outcome: str, detail: str = "") -> None:
        self.tried += 1
        if outcome == "accepted":
            self.accepted += 1
        elif outcome == "refused":
            self.refused += 1
        else:
            self.defects.append(detail or outcome)

    def line(self) -> str:
        return (f"{self.name}: {self.tried} cases tried, {self.refused} refused with our error, "
                f"{self.accepted} accepted (harmless, exact), {len(self.defects)} defects")

    def report(self) -> int:
        print(self.line())
        for d in self.defects[:20]:
            print("  DEFECT:", d)
        return 1 if self.defects else 0


def ours(exc: BaseException) -> bool:
    """Whether ``exc`` follows the error rule (see docs/security.md)."""
    from lambdaslim._errors import LambdaslimError

    if isinstance(exc, LambdaslimError):  # ArchiveError, StorageBudgetError, ObjectChangedError...
        return True
    return isinstance(exc, OSError) and bool(getattr(exc, "filename", None))


def make_site(site: Path, seed: int, dists: int = 3, files: int = 40, max_size: int = 64 << 10) -> dict[str, bytes]:
    """Installed distributions of random modules and data files; returns {relpath: bytes} of each."""
    from helpers import make_dist

    rng = random.Random(seed)
    content: dict[str, bytes] = {}
    for d in range(dists):
        name = f"pkg{d}"
        members = {f"{name}/__init__.py": f"N = {d}\n".encode()}
        for i in range(files):
            sub = f"{name}/sub{i % 4}" + ("/deep" if i % 7 == 0 else "")
            # every third file is data: memory mode writes it into the tree, the code it serves
            # from the layer (LAMBDASLIM_PYTHON=memory|disk: both modes are exercised)
            members[f"{sub}/m{i}" + (".bin" if i % 3 == 2 else ".py")] = \
                f"# {i}\n".encode() + rng.randbytes(rng.randrange(max_size))
        for i in range(4):
            members.setdefault(f"{name}/sub{i}/__init__.py", b"")
        make_dist(site, name, "1.0", members)
        content.update(members)
    return content


def pack(site: Path, out: Path, part_bytes: int = 256 << 10) -> Path:
    from lambdaslim.build._pack import pack_tree

    pack_tree(str(site), str(out), level=1, part_bytes=part_bytes, quiet=True)
    return out


def outside_writes(work: Path, allowed: set[str]) -> list[str]:
    """Entries in ``work`` other than the allowed ones: bytes written outside the root."""
    return sorted(set(os.listdir(work)) - allowed)


def tree_files(unit: Any, tree_name: str) -> list[tuple[str, int]]:
    """(path, size) of what a published tree of ``unit`` holds: every file in disk mode
    (``units/<key>``), the disk parts' files in memory mode (``units/<key>.m``)."""
    files = unit.disk_files() if tree_name.endswith(".m") else unit.files
    return [(f.path, f.size) for f in files]


def in_tree(rel: str, tree_name: str) -> bool:
    """Whether the content file ``rel`` is written into a tree of this mode (code is not, in memory mode)."""
    return not (tree_name.endswith(".m") and rel.endswith(".py"))
