"""Bounded, seeded subsets of the four hardening campaigns in benchmarks/ (issue 10).

The full runs and their figures are in docs/security.md. Each subset must find 0 defects,
and each also shows that its judge can fail: a deliberately unsafe input or result is
counted as a defect.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import campaign_full_disk  # noqa: E402
import campaign_fuzz  # noqa: E402
import campaign_kill  # noqa: E402
import campaign_s3_faults  # noqa: E402
from _campaign import Tally  # noqa: E402


def test_fuzz_subset_only_our_errors(tmp_path: Path) -> None:
    tally = campaign_fuzz.run(250, 7, tmp_path)
    assert tally.defects == [], tally.defects[:5]
    assert tally.tried == 250 and tally.refused > 125 and tally.accepted > 0


def test_fuzz_judge_catches_foreign_errors_and_writes_outside(tmp_path: Path) -> None:
    def unsafe(dest: str) -> None:
        raise TypeError("what an unvalidated index does")

    assert len(campaign_fuzz.run(20, 7, tmp_path / "a", reader=unsafe).defects) == 20

    def escaping(dest: str) -> None:
        os.makedirs(dest)
        (Path(dest) / ".." / ".." / "escaped").write_text("x")

    tally = campaign_fuzz.run(5, 7, tmp_path / "b", reader=escaping)
    assert len(tally.defects) == 5 and "outside the root" in tally.defects[0]


def test_kill_subset_no_corrupt_import_no_leftover(tmp_path: Path) -> None:
    tally = campaign_kill.run(8, 3, tmp_path)
    assert tally.defects == [], tally.defects[:5]
    assert tally.tried > 0


@pytest.mark.parametrize("mode,suffix", [("disk", ".py"), ("memory", ".bin")])
def test_kill_judge_catches_a_wrong_tree(tmp_path: Path, mode: str, suffix: str) -> None:
    campaign = campaign_kill.Campaign(tmp_path, 3)
    campaign._clean(Tally("clean"))  # publishes every tree, in both modes
    victim = next(r for r in campaign.content if r.endswith(suffix) and len(campaign.content[r]) > 10)
    tree = next(p for p in (campaign.root / "units").iterdir()
                if p.name.startswith(victim.split("/")[0]) and p.name.endswith(".m") == (mode == "memory"))
    (tree / victim).write_bytes(b"#" * len(campaign.content[victim]))  # same size: reused as is
    tally = Tally("judge")
    campaign._clean(tally, (mode,))
    assert len(tally.defects) == 1 and "differ" in tally.defects[0]


@pytest.mark.lambda_tmp("12MiB", mode="tmpfs")
def test_full_disk_subset_clear_error_nothing_partial(lambda_tmp: Any, tmp_path: Path) -> None:
    campaign = campaign_full_disk.Campaign(tmp_path, lambda_tmp.path, 11, size=lambda_tmp.limit)
    tally = Tally("full disk")
    for _ in range(4):
        tally.add(*campaign.case())
    assert tally.defects == [], tally.defects
    (campaign.root / "staging" / "left-behind").mkdir(parents=True)
    assert "staging/ holds" in campaign._partial()  # the judge sees a partial tree


def test_s3_faults_subset_exact_bytes_or_our_error(s3_server: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from lambdaslim import s3

    monkeypatch.setenv("LAMBDASLIM_TMP", str(tmp_path / "tmp"))
    try:
        tally = campaign_s3_faults.run(8, 5, s3_server)
    finally:
        s3.clear_cache()
        s3.set_client(None)
    assert tally.defects == [], tally.defects
    assert tally.tried == 8 and tally.accepted + tally.refused == 8
    assert os.path.isdir(tmp_path / "tmp")  # the disk cache was exercised
