"""The storage budget shared by extraction, the S3 disk cache and scratch folders."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

import lambdaslim
from lambdaslim._runtime._budget import Budget
from lambdaslim._size import format_size, parse_size


def test_parse_size_units() -> None:
    assert parse_size("512MB") == 512_000_000
    assert parse_size("1GiB") == 1024**3
    assert parse_size("1000") == 1000
    assert parse_size(" 1.5 gb ") == 1_500_000_000
    for bad in ("", "MB", "12 parsecs", "-5"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert format_size(123_456_789) == "123.5 MB"


def test_reserve_refuses_with_facts_before_writing(tmp_path: Path) -> None:
    budget = Budget(str(tmp_path / "root"), limit=1_000_000)
    with pytest.raises(lambdaslim.StorageBudgetError) as info:
        with budget.reserve("bigpkg 1.0", 2_000_000):
            pytest.fail("must not get here")
    err = info.value
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC
    assert err.needed == 2_000_000 and err.available <= 1_000_000 and err.limit == 1_000_000
    assert "bigpkg 1.0" in str(err) and "EphemeralStorage" in str(err)
    assert err.suggested_mb >= 512
    assert os.listdir(budget.path("reserve")) == []


def test_reservations_count_until_released(tmp_path: Path) -> None:
    budget = Budget(str(tmp_path / "root"), limit=10_000_000)
    with budget.reserve("a", 6_000_000):
        assert budget.usage()["reserved"] == 6_000_000
        with pytest.raises(lambdaslim.StorageBudgetError):
            with budget.reserve("b", 6_000_000):
                pass
    with budget.reserve("b", 6_000_000):
        pass


def test_dead_process_reservations_are_swept(tmp_path: Path) -> None:
    budget = Budget(str(tmp_path / "root"), limit=10_000_000)
    budget.ensure_dirs()
    Path(budget.path("reserve", "999999999.1.1")).write_text("9000000")  # no such pid
    with budget.reserve("fits once the dead one is gone", 5_000_000):
        pass


def _cache_entry(budget: Budget, name: str, nbytes: int, age: float) -> Path:
    entry = Path(budget.path("cache", "s3", name))
    entry.mkdir(parents=True)
    (entry / "data").write_bytes(os.urandom(nbytes))
    t = time.time() - age
    os.utime(entry, (t, t))
    return entry


def test_reserve_evicts_least_recently_used_cache_entries_first(tmp_path: Path) -> None:
    budget = Budget(str(tmp_path / "root"), limit=3_000_000)
    old = _cache_entry(budget, "old", 1_000_000, age=100)
    new = _cache_entry(budget, "new", 1_000_000, age=1)
    assert budget.usage()["caches"] >= 2_000_000
    with budget.reserve("pkg", 1_500_000):
        pass
    assert not old.exists() and new.exists()


def test_usage_categories(tmp_path: Path) -> None:
    budget = Budget(str(tmp_path / "root"), limit=50_000_000)
    budget.ensure_dirs()
    unit = Path(budget.path("units", "pkg-1.0-abc"))
    unit.mkdir()
    (unit / ".lambdaslim-complete").write_text('{"sha256": "x", "disk_bytes": 123456}')
    scratch = Path(budget.path("scratch", "req-1"))
    scratch.mkdir()
    (scratch / "f").write_bytes(b"x" * 10000)
    _cache_entry(budget, "e", 20000, age=0)
    u = budget.usage()
    assert u["packages"] == 123456
    assert u["scratch"] >= 10000 and u["caches"] >= 20000
    assert u["limit"] == 50_000_000
    assert u["free"] <= 50_000_000 - 123456 - 10000 - 20000
