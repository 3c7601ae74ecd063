"""``lambdaslim demo``: the real thing, with a faster zstd level."""

from __future__ import annotations

import os

import pytest

from lambdaslim import _cli, _demo


def test_demo_is_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _cli.main(["demo", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--tmp" in out and "--backend" in out


@pytest.mark.slow
def test_demo_runs_cold_then_warm(tmp_path: os.PathLike[str]) -> None:
    figures = _demo.run_demo(warm=1, level=3, backend="auto", fetch_rie=False, quiet=True,
                             workdir=str(tmp_path))
    assert figures["cold_start_flags"] == [True, False]
    assert figures["accuracy"] > 0.6
    assert figures["extract_ms"] > 0
    assert figures["restart_extract_ms"] == 0  # a new process reused the extracted trees
    assert figures["scratch_left"] == []
    assert 100_000_000 < figures["tmp_used_bytes"] <= figures["tmp_limit_bytes"] == 512_000_000
    assert figures["layer_zip_bytes"] < figures["layer_unpacked_bytes"]
    assert figures["init_ms"] >= figures["extract_ms"]
    table = _demo.render(figures)
    for row in ("layer zip", "extraction into /tmp", "imports", "first response", "warm response", "/tmp used"):
        assert row in table
