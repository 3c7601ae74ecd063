"""The packed-layer format, ``lambdaslim pack`` and ``lambdaslim inspect`` (issue 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lambdaslim import ArchiveError, PackError
from lambdaslim._runtime._extract import extract_unit
from lambdaslim._runtime._format import read_index
from lambdaslim.build._pack import pack_tree
from lambdaslim.build._scan import scan

from helpers import make_dist, tree_digest, unzip_layer

pytestmark = pytest.mark.slow


def _roundtrip(site: Path, layer: Path, tmp: Path) -> None:
    """Every byte and exec bit of every packed file comes back from the layer."""
    opt = unzip_layer(layer, tmp / "opt")
    (index_dir,) = (opt / "lambdaslim").iterdir()
    index = read_index(str(index_dir))
    seen = set()
    for unit in index.units:
        dest = tmp / "out" / unit.key
        extract_unit(index, unit, str(dest), workers=2)
        paths = [f.path for f in unit.files]
        seen.update(paths)
        assert tree_digest(dest, paths) == tree_digest(site, paths), unit.name
        for f in unit.files:
            assert (dest / f.path).stat().st_size == f.size
    on_disk = {
        str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()
    }
    assert seen == on_disk


def test_real_wheels_roundtrip_every_byte_and_mode(small_site: Path, tmp_path: Path) -> None:
    layer = tmp_path / "layer.zip"
    # A small part size forces numpy into several independently compressed parts.
    result = pack_tree(str(small_site), str(layer), level=3, part_bytes=8 << 20, quiet=True)
    by_name = {u.name: u for u in result.index.units}
    assert {"numpy", "six", "jaraco.functools", "jaraco.context"} <= set(by_name)
    numpy = by_name["numpy"]
    assert numpy.import_names == ["numpy"]
    assert len(numpy.parts) > 2
    big = max(numpy.files, key=lambda f: f.size)
    assert big.size > 8 << 20, "numpy's bundled OpenBLAS is larger than a part"
    big_no = numpy.files.index(big)
    slices = [p for p in numpy.parts if p.offset is not None and p.first == big_no]
    assert len(slices) > 1 and sum(p.unpacked_bytes for p in slices) == big.size, "a huge file is cut into slices"
    assert any(f.path.startswith("numpy.libs/") for f in numpy.files), "vendored .libs belongs to numpy"
    assert by_name["six"].import_names == ["six"]
    assert by_name["jaraco.functools"].import_names == ["jaraco.functools"]
    assert by_name["jaraco.context"].import_names == ["jaraco.context"]
    # Executables keep their exec bit (numpy ships its f2py script in bin/, claimed by no RECORD).
    assert any(f.mode == 0o755 for u in result.index.units for f in u.files)
    _roundtrip(small_site, layer, tmp_path)


def test_layer_layout_has_runtime_python_folder(small_site: Path, tmp_path: Path) -> None:
    layer = tmp_path / "layer.zip"
    result = pack_tree(str(small_site), str(layer), level=1, quiet=True)
    with zipfile.ZipFile(layer) as zf:
        names = zf.namelist()
    assert "python/lambdaslim/__init__.py" in names
    assert "python/lambdaslim/bootstrap.py" in names or any(n.startswith("python/lambdaslim/_") for n in names)
    # lambdaslim's zstandard and filelock are private copies: no top-level package, no dist-info
    assert any(n.startswith("python/lambdaslim/_vendor/zstandard/") for n in names)
    assert any(n.startswith("python/lambdaslim/_vendor/filelock/") for n in names)
    assert not any(n.startswith(("python/zstandard", "python/filelock")) for n in names)
    assert not any("_cffi." in n or "backend_cffi" in n for n in names)  # never runs on CPython
    # the build side never ships
    assert not any(n.startswith(("python/lambdaslim/build/", "python/lambdaslim/testing/")) for n in names)
    assert not any(n.startswith(("python/lambdaslim/_cli", "python/lambdaslim/_demo")) for n in names)
    base = f"lambdaslim/{result.index.layer_id}/"
    assert base + "index.json" in names
    assert any(n.startswith(base + "meta/numpy-") and n.endswith("/METADATA") for n in names)
    assert not any(n.startswith("python/numpy") for n in names), "packed code stays out of python/"


def test_namespace_package_spread_over_two_distributions(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_dist(site, "ns-a", "1.0", {"ns/a/__init__.py": b"A = 1\n"})
    make_dist(site, "ns-b", "2.0", {"ns/b/__init__.py": b"B = 2\n", "ns/b/data.bin": os.urandom(5000)})
    units = {u.name: u for u in scan(str(site))}
    assert units["ns-a"].import_names == ["ns.a"]
    assert units["ns-b"].import_names == ["ns.b"]
    layer = tmp_path / "l.zip"
    pack_tree(str(site), str(layer), level=1, quiet=True)
    _roundtrip(site, layer, tmp_path)


def test_unclaimed_files_go_to_one_extra_unit(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_dist(site, "pkg", "1.0", {"pkg/__init__.py": b"x = 1\n"})
    (site / "pkg" / "generated.dat").write_bytes(b"made after install")  # under pkg/: pkg's
    (site / "loose.py").write_text("y = 2\n")  # no RECORD claims it
    units = {u.name: u for u in scan(str(site))}
    assert "pkg/generated.dat" in [f.relpath for f in units["pkg"].files]
    extra = [u for u in units.values() if u.kind == "unclaimed"]
    assert len(extra) == 1 and [f.relpath for f in extra[0].files] == ["loose.py"]
    assert extra[0].import_names == ["loose"]


def test_exec_bits_kept(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_dist(site, "tool", "1.0", {"tool/__init__.py": b"", "tool/bin/run": b"#!/bin/sh\necho hi\n"})
    os.chmod(site / "tool/bin/run", 0o755)
    layer = tmp_path / "l.zip"
    result = pack_tree(str(site), str(layer), level=1, quiet=True)
    modes = {f.path: f.mode for f in result.index.units[0].files}
    assert modes["tool/bin/run"] == 0o755 and modes["tool/__init__.py"] == 0o644
    _roundtrip(site, layer, tmp_path)


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_links_refused_at_pack_time(tmp_path: Path, kind: str) -> None:
    site = tmp_path / "site"
    make_dist(site, "pkg", "1.0", {"pkg/__init__.py": b""})
    if kind == "symlink":
        os.symlink("/etc/passwd", site / "pkg" / "evil")
    else:
        os.link(site / "pkg" / "__init__.py", site / "pkg" / "twin.py")
    with pytest.raises(PackError, match="link"):
        pack_tree(str(site), str(tmp_path / "l.zip"), level=1, quiet=True)
    assert not (tmp_path / "l.zip").exists()


def test_record_paths_outside_the_tree_are_not_packed(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_dist(site, "pkg", "1.0", {"pkg/__init__.py": b""})
    rec = next(site.glob("pkg-1.0.dist-info")) / "RECORD"
    rec.write_text(rec.read_text() + "../../../bin/pkg-script,,\n/etc/passwd,,\n")
    (unit,) = scan(str(site))
    assert all(not f.relpath.startswith(("..", "/")) for f in unit.files)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lambdaslim", *args], capture_output=True, text=True)


def test_cli_errors_one_line_exit_2_nothing_left(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "bad"
    make_dist(bad, "pkg", "1.0", {"pkg/__init__.py": b""}, record='pkg/__init__.py,"unterminated\n')
    cases = {
        "missing": [str(tmp_path / "nope"), "-o", str(out / "a.zip")],
        "empty": [str(empty), "-o", str(out / "a.zip")],
        "corrupt RECORD": [str(bad), "-o", str(out / "a.zip")],
        "unwritable": [str(bad.parent / "empty"), "-o", str(tmp_path / "no-such-dir" / "a.zip")],
    }
    good = tmp_path / "good"
    make_dist(good, "pkg", "1.0", {"pkg/__init__.py": b""})
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    cases["unwritable"] = [str(good), "-o", str(tmp_path / "no-such-dir" / "a.zip")]
    for what, argv in cases.items():
        proc = _cli("pack", *argv)
        assert proc.returncode == 2, (what, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lambdaslim pack: error:"), (what, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert "RECORD" in _cli("pack", *cases["corrupt RECORD"]).stderr
    assert list(out.iterdir()) == [], "no half-written layer left behind"


def test_failure_mid_pack_leaves_nothing(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_dist(site, "pkg", "1.0", {"pkg/__init__.py": b"x" * 1000, "pkg/b.py": b"y" * 1000})
    out = tmp_path / "out"
    out.mkdir()
    units = scan(str(site))
    (site / "pkg" / "b.py").write_bytes(b"")  # shrinks after the scan: packing must fail
    with pytest.raises(PackError, match="shrank"):
        pack_tree(str(site), str(out / "l.zip"), level=1, quiet=True, units=units)
    assert list(out.iterdir()) == []


def test_inspect_json_is_stable_and_complete(small_site: Path, tmp_path: Path) -> None:
    layer = tmp_path / "layer.zip"
    assert _cli("pack", str(small_site), "-o", str(layer), "--level", "1", "--quiet").returncode == 0
    proc = _cli("inspect", str(layer), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    numpy = next(d for d in data["distributions"] if d["name"] == "numpy")
    for key in ("name", "version", "import_names", "packed_bytes", "unpacked_bytes", "files"):
        assert key in numpy
    assert 0 < numpy["packed_bytes"] < numpy["unpacked_bytes"]
    totals = data["totals"]
    assert totals["layer_zip_bytes"] == layer.stat().st_size
    assert totals["packed_bytes"] == sum(d["packed_bytes"] for d in data["distributions"])
    assert totals["unpacked_bytes"] == sum(d["unpacked_bytes"] for d in data["distributions"])
    human = _cli("inspect", str(layer))
    assert "numpy" in human.stdout and "250 MB" in human.stdout and "/tmp" in human.stdout


def test_inspect_rejects_a_zip_without_index(tmp_path: Path) -> None:
    z = tmp_path / "plain.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("python/x.py", "")
    proc = _cli("inspect", str(z))
    assert proc.returncode == 2 and "no lambdaslim index" in proc.stderr


def _pack_small(tmp_path: Path) -> tuple[Path, Path]:
    site = tmp_path / "site"
    make_dist(site, "pkg", "1.0", {f"pkg/m{i}.py": os.urandom(3000) for i in range(20)})
    layer = tmp_path / "l.zip"
    pack_tree(str(site), str(layer), level=3, quiet=True)
    opt = unzip_layer(layer, tmp_path / "opt")
    (index_dir,) = (opt / "lambdaslim").iterdir()
    return site, index_dir


def test_corrupt_part_is_refused(tmp_path: Path) -> None:
    _, index_dir = _pack_small(tmp_path)
    index = read_index(str(index_dir))
    part = index_dir / index.units[0].parts[0].path
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="pkg"):
        extract_unit(index, index.units[0], str(tmp_path / "x"))


def test_truncated_part_is_refused(tmp_path: Path) -> None:
    _, index_dir = _pack_small(tmp_path)
    index = read_index(str(index_dir))
    part = index_dir / index.units[0].parts[0].path
    part.write_bytes(part.read_bytes()[:-100])
    with pytest.raises(ArchiveError):
        extract_unit(index, index.units[0], str(tmp_path / "x"))


@pytest.mark.parametrize("evil", ["../escape.py", "/etc/evil", "a/../../b", "a//b", "a\\..\\b"])
def test_hostile_paths_in_index_are_refused(tmp_path: Path, evil: str) -> None:
    _, index_dir = _pack_small(tmp_path)
    raw = json.loads((index_dir / "index.json").read_text())
    raw["units"][0]["files"][0][0] = evil
    (index_dir / "index.json").write_text(json.dumps(raw))
    with pytest.raises(ArchiveError, match="unsafe path"):
        read_index(str(index_dir))


def test_index_with_wrong_sizes_is_refused(tmp_path: Path) -> None:
    _, index_dir = _pack_small(tmp_path)
    raw = json.loads((index_dir / "index.json").read_text())
    raw["units"][0]["files"][0][1] += 1
    (index_dir / "index.json").write_text(json.dumps(raw))
    with pytest.raises(ArchiveError, match="size disagrees"):
        read_index(str(index_dir))


def test_slice_parts_that_do_not_cover_their_file_are_refused(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_dist(site, "big", "1.0", {"big/__init__.py": b"", "big/blob.bin": os.urandom(300_000)})
    layer = tmp_path / "l.zip"
    pack_tree(str(site), str(layer), level=1, part_bytes=100_000, quiet=True)
    opt = unzip_layer(layer, tmp_path / "opt")
    (index_dir,) = (opt / "lambdaslim").iterdir()
    index = read_index(str(index_dir))
    _roundtrip(site, layer, tmp_path)
    assert sum(p.offset is not None for p in index.units[0].parts) == 3
    raw = json.loads((index_dir / "index.json").read_text())
    slice_part = next(p for p in raw["units"][0]["parts"] if p.get("offset"))
    slice_part["offset"] += 1  # a gap in the file
    (index_dir / "index.json").write_text(json.dumps(raw))
    with pytest.raises(ArchiveError, match="cover"):
        read_index(str(index_dir))
