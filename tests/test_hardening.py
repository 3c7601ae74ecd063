"""Issue 10: every broken or hostile layer gets our error, and never breaks anything else."""

from __future__ import annotations

import json
import os
import signal
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdaslim import ArchiveError
from lambdaslim._runtime import _format
from lambdaslim._runtime._budget import Budget, owner
from lambdaslim._runtime._store import is_complete, sweep_staging
from lambdaslim._runtime._zipbundle import ZipBundle
from lambdaslim.build._pack import pack_tree

from helpers import make_dist, unzip_layer
from lambdaenv import finish, run, start


def _layer(tmp_path: Path, opt: Path, name: str, version: str = "1.0", body: bytes = b"V = 1\n") -> Path:
    """Pack one tiny distribution into ``opt``; returns its layer folder."""
    site = tmp_path / f"site-{name}-{version}"
    make_dist(site, name, version, {f"{name}/__init__.py": body})
    zpath = tmp_path / f"{name}-{version}.zip"
    pack_tree(str(site), str(zpath), level=1, quiet=True)
    with zipfile.ZipFile(zpath) as zf:
        layer_id = next(n.split("/")[1] for n in zf.namelist() if n.endswith("/index.json"))
    unzip_layer(zpath, opt)
    return opt / "lambdaslim" / layer_id


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    return _layer(tmp_path, tmp_path / "opt", "alpha")


def _index(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "index.json").read_text())
    return data


def _reads(raw: Any) -> _format.LayerIndex:
    return _format.loads(json.dumps(raw) if not isinstance(raw, (str, bytes)) else raw, "idx")


# -- the schema ------------------------------------------------------------------------------

def _mutations() -> list[tuple[str, Any]]:
    return [
        ("dist_info not a string", lambda u: u.__setitem__("dist_info", 5)),
        ("dist_info outside the layer", lambda u: u.__setitem__("dist_info", "../../x.dist-info")),
        ("import_names a string", lambda u: u.__setitem__("import_names", "alpha")),
        ("import name not an identifier", lambda u: u.__setitem__("import_names", ["a-b"])),
        ("path 1,500 folders deep", lambda u: u["files"].__setitem__(0, ["a/" * 1500 + "x.py", 0, 420])),
        ("path not UTF-8", lambda u: u["files"].__setitem__(0, ["\udc80.py", 0, 420])),
        ("size a float", lambda u: u["files"][0].__setitem__(1, 1.5)),
        ("size enormous", lambda u: u["files"][0].__setitem__(1, 10 ** 30)),
        ("file row a dict", lambda u: u["files"].__setitem__(0, {"path": "x"})),
        ("part a list", lambda u: u["parts"].__setitem__(0, [1, 2])),
        ("sha256 not hex", lambda u: u.__setitem__("sha256", "z" * 64)),
        ("unpacked_bytes a lie", lambda u: u.__setitem__("unpacked_bytes", u["unpacked_bytes"] + 1)),
        ("key with a slash", lambda u: u.__setitem__("key", "a/b")),
        ("files_count a lie", lambda u: u.__setitem__("files_count", 99)),
        # format 2's fields
        ("part kind unknown", lambda u: u["parts"][0].__setitem__("kind", "exec")),
        ("part kind not a string", lambda u: u["parts"][0].__setitem__("kind", ["code"])),
        ("code part called disk", lambda u: [p.__setitem__("kind", "disk") for p in u["parts"] if p["kind"] == "code"]),
        ("meta part called code", lambda u: [p.__setitem__("kind", "code") for p in u["parts"] if p["kind"] == "meta"]),
        ("code_bytes a string", lambda u: u.__setitem__("code_bytes", "12")),
        ("code_bytes missing", lambda u: u.pop("code_bytes")),
        ("native_disk_bytes negative", lambda u: u.__setitem__("native_disk_bytes", -1)),
        ("native_disk_bytes enormous", lambda u: u.__setitem__("native_disk_bytes", 10 ** 30)),
    ]


@pytest.mark.parametrize("what,mutate", _mutations(), ids=[m[0] for m in _mutations()])
def test_schema_refuses_with_our_error(layer: Path, what: str, mutate: Any) -> None:
    raw = _index(layer)
    _reads(raw)  # the original passes: the mutation is what is refused
    mutate(raw["units"][0])
    with pytest.raises(ArchiveError) as info:
        _reads(raw)
    assert "idx" in str(info.value)


def test_index_of_nested_brackets_and_bad_shapes_are_archive_errors() -> None:
    for text in ["[" * 100_000 + "]" * 100_000, '{"format": "lambdaslim-layer", "format_version": 2, "units": '
                 + "[" * 5000 + "]" * 5000 + "}", "[]", "null", '"x"', b"\xff\xfe", "1" * 5000,
                 '{"format": "lambdaslim-layer", "format_version": 2, "layer_id": "a", "units": [5]}']:
        with pytest.raises(ArchiveError):
            _reads(text)


def test_duplicate_unit_keys_are_refused(layer: Path) -> None:
    raw = _index(layer)
    raw["units"].append(raw["units"][0])
    with pytest.raises(ArchiveError, match="twice"):
        _reads(raw)


def test_disk_bytes_come_from_the_file_table_not_the_index(layer: Path) -> None:
    raw = _index(layer)
    real = _reads(raw).units[0].disk_bytes
    raw["units"][0]["disk_bytes"] = 4096 * 1000
    assert _reads(raw).units[0].disk_bytes == real


def test_code_and_native_disk_bytes_come_from_the_file_table_not_the_index(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_dist(site, "alpha", "1.0", {"alpha/__init__.py": b"V = 1\n" * 100, "alpha/lib.so": b"\x7fELF" * 3000,
                                     "alpha/data/x.txt": b"x"})
    zpath = tmp_path / "l.zip"
    pack_tree(str(site), str(zpath), level=1, quiet=True)
    unzip_layer(zpath, tmp_path / "opt")
    raw = _index(next((tmp_path / "opt" / "lambdaslim").iterdir()))
    u = _reads(raw).units[0]
    assert u.code_bytes == 600  # alpha/__init__.py
    # lib.so (3 blocks) and x.txt (1): the only disk files; a block per folder (alpha, alpha/data, dist-info)
    assert u.native_disk_bytes == 4096 * (3 + 1) + 4096 * 3
    assert u.disk_bytes > u.native_disk_bytes
    real = (u.code_bytes, u.native_disk_bytes)
    raw["units"][0]["code_bytes"], raw["units"][0]["native_disk_bytes"] = 0, 1  # lies: ignored
    u = _reads(raw).units[0]
    assert (u.code_bytes, u.native_disk_bytes) == real
    assert [p.kind for p in u.parts] == ["disk", "meta", "code"]


def test_a_format_1_layer_is_told_to_repack(layer: Path) -> None:
    raw = _index(layer)
    raw["format_version"] = 1
    with pytest.raises(ArchiveError, match="version 1 is not supported .*repack the layer"):
        _reads(raw)


def test_a_part_asking_for_a_window_over_8_mib_is_refused(layer: Path, tmp_path: Path) -> None:
    import hashlib

    import zstandard

    from lambdaslim._runtime._extract import extract_unit

    raw = _index(layer)
    unit = raw["units"][0]
    part = unit["parts"][0]
    data = zstandard.ZstdDecompressor().decompress((layer / part["path"]).read_bytes())
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=26, write_content_size=0)
    stream = zstandard.ZstdCompressor(compression_params=params).compressobj()  # size unknown: window kept
    big = stream.compress(data) + stream.flush()
    assert zstandard.get_frame_parameters(big).window_size == 64 << 20
    (layer / part["path"]).write_bytes(big)
    part["sha256"], part["packed_bytes"] = hashlib.sha256(big).hexdigest(), len(big)
    unit["packed_bytes"] = sum(p["packed_bytes"] for p in unit["parts"])  # format 2: several parts
    (layer / "index.json").write_text(json.dumps(raw))
    index = _format.read_index(str(layer))
    with pytest.raises(ArchiveError, match="corrupt"):
        extract_unit(index, index.units[0], str(tmp_path / "dest"))


# -- zip bundles -----------------------------------------------------------------------------

def _bundle(path: Path, members: dict[str, bytes], compress: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_zip_bundle_odd_members_are_archive_errors(tmp_path: Path) -> None:
    deep = _bundle(tmp_path / "deep.zip", {"pkg/__init__.py": b"", "pkg/" + "d/" * 1500 + "x.py": b"x"})
    with pytest.raises(ArchiveError, match="deep"):
        ZipBundle(str(deep)).extract(str(tmp_path / "d1"))
    enc = _bundle(tmp_path / "enc.zip", {"pkg/__init__.py": b"A = 1\n"})
    blob = bytearray(enc.read_bytes())
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # set the "encrypted" flag in both headers
        at = blob.find(sig)
        flag_at = at + (6 if sig == b"PK\x03\x04" else 8)
        blob[flag_at] |= 1
    enc.write_bytes(bytes(blob))
    with pytest.raises(ArchiveError, match="RuntimeError"):
        ZipBundle(str(enc)).extract(str(tmp_path / "d2"))
    odd = _bundle(tmp_path / "odd.zip", {"pkg/__init__.py": b"A = 1\n"})
    blob = bytearray(odd.read_bytes())
    for sig, off in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # compression method 99
        at = blob.find(sig)
        blob[at + off : at + off + 2] = (99).to_bytes(2, "little")
    odd.write_bytes(bytes(blob))
    with pytest.raises(ArchiveError, match="NotImplementedError"):
        ZipBundle(str(odd)).extract(str(tmp_path / "d3"))


# -- the extraction root ---------------------------------------------------------------------

def test_sweeps_take_dead_reused_and_oddly_named_owners(tmp_path: Path) -> None:
    budget = Budget(str(tmp_path / "root"))
    budget.ensure_dirs()
    reused = f"{os.getpid()}-1"  # our pid, another start time: a previous process's
    for name in [f"{10 ** 30}.1.1", f"{reused}.1.1", "garbage", f"{os.getpid()}.1.1", "-5.1.1"]:
        (tmp_path / "root" / "reserve" / name).write_text("999999999999")
    live = f"{owner()}.1.1"
    (tmp_path / "root" / "reserve" / live).write_text("7")
    assert budget.reserved_bytes(sweep=True) == 7
    assert [p.name for p in (tmp_path / "root" / "reserve").iterdir()] == [live]
    staging = tmp_path / "root" / "staging"
    for name in [f"k.stage{10 ** 30}.1", f"k.stage{reused}.1", "whatever", f"k.stage{owner()}.1"]:
        (staging / name).mkdir()
    (staging / "a-file").write_text("x")
    assert sweep_staging(budget) == 4
    assert [p.name for p in staging.iterdir()] == [f"k.stage{owner()}.1"]


def test_a_fifo_marker_is_not_complete_and_never_hangs(tmp_path: Path) -> None:
    budget = Budget(str(tmp_path / "root"))
    tree = tmp_path / "root" / "units" / "k"
    tree.mkdir(parents=True)
    os.mkfifo(tree / ".lambdaslim-complete")
    signal.alarm(20)  # a hang fails the test instead of blocking the run
    try:
        assert is_complete(budget, "k", "0" * 64) is False
        assert budget.packages_bytes() >= 0
    finally:
        signal.alarm(0)


def test_a_damaged_tree_is_extracted_again(layer: Path, tmp_path: Path) -> None:
    opt, tmp = tmp_path / "opt", tmp_path / "tmp"
    code = ("import lambdaslim.bootstrap as b, alpha\n"
            "report([alpha.V, b.status()['alpha']['extractions']])")
    assert run(code, opt, tmp, LAMBDASLIM_PYTHON="disk") == [1, 1]  # disk mode: every file in the tree
    assert run(code, opt, tmp, LAMBDASLIM_PYTHON="disk") == [1, 0]  # warm: reused
    tree = next((tmp / "units").iterdir())
    (tree / "alpha" / "__init__.py").write_text("V = 2  # changed, other size\n")
    assert run(code, opt, tmp, LAMBDASLIM_PYTHON="disk") == [1, 1]
    (tree := next((tmp / "units").iterdir()))
    (tree / "alpha" / "__init__.py").unlink()
    assert run(code, opt, tmp, LAMBDASLIM_PYTHON="disk") == [1, 1]


def test_a_damaged_memory_tree_is_extracted_again(tmp_path: Path) -> None:
    """A memory-mode tree (units/<key>.m) holds the disk files only: exactly those are checked."""
    site, opt, tmp = tmp_path / "site", tmp_path / "opt", tmp_path / "tmp"
    make_dist(site, "alpha", "1.0", {"alpha/__init__.py": b"import os\nHERE = os.path.dirname(__file__)\n",
                                     "alpha/data.txt": b"payload\n", "alpha/sub/more.bin": b"\x00" * 100})
    pack_tree(str(site), str(tmp_path / "l.zip"), level=1, quiet=True)
    unzip_layer(tmp_path / "l.zip", opt)
    code = ("import os, lambdaslim.bootstrap as b, alpha\n"
            "report([open(os.path.join(alpha.HERE, 'data.txt')).read(), b.status()['alpha']['extractions']])")
    assert run(code, opt, tmp, LAMBDASLIM_PYTHON="memory") == ["payload\n", 1]
    assert run(code, opt, tmp, LAMBDASLIM_PYTHON="memory") == ["payload\n", 0]  # warm: reused with no .py in it
    tree = next((tmp / "units").iterdir())
    assert tree.name.endswith(".m") and not list(tree.rglob("*.py"))
    (tree / "alpha" / "data.txt").write_text("other size\n")
    assert run(code, opt, tmp, LAMBDASLIM_PYTHON="memory") == ["payload\n", 1]
    tree = next((tmp / "units").iterdir())
    (tree / "alpha" / "sub" / "more.bin").unlink()
    assert run(code, opt, tmp, LAMBDASLIM_PYTHON="memory") == ["payload\n", 1]
    tree = next((tmp / "units").iterdir())
    (tree / "alpha" / "data.txt").unlink()
    os.mkfifo(tree / "alpha" / "data.txt")  # not a regular file
    assert run(code, opt, tmp, LAMBDASLIM_PYTHON="memory") == ["payload\n", 1]


# -- isolation and the duplicate rule ---------------------------------------------------------

def test_a_broken_layer_is_set_aside_and_names_itself(tmp_path: Path) -> None:
    opt, tmp = tmp_path / "opt", tmp_path / "tmp"
    _layer(tmp_path, opt, "alpha")
    bad_table = _layer(tmp_path, opt, "beta")
    raw = _index(bad_table)
    raw["units"][0]["files"][0][1] = "big"  # wrong type, found when beta's table is first used
    (bad_table / "index.json").write_text(json.dumps(raw))
    future = _layer(tmp_path, opt, "gamma")
    raw = _index(future)
    raw["format_version"] = 99  # found when the indexes are read
    (future / "index.json").write_text(json.dumps(raw))
    (opt / "broken.zip").write_bytes(b"PK\x03\x04 truncated")
    code = ("import logging, sys\nlogging.basicConfig(level=logging.WARNING, stream=sys.stderr)\n"
            "import lambdaslim.bootstrap as b\nimport alpha, dbm\nout = [alpha.V]\n"
            "for name in ('notthere', 'beta', 'gamma', 'beta'):\n"
            "    try:\n        __import__(name)\n    except ModuleNotFoundError as e:\n        out.append(str(e))\n"
            "report(out + [sorted((v['state'], v['kind']) for v in b.status().values())])")
    rc, out, err = finish(start(code, opt, tmp))
    assert rc == 0, err
    assert out[0] == 1 and out[1] == "No module named 'notthere'"
    assert str(bad_table) in out[2] and "bad file size" in out[2] and out[4] == out[2]
    assert str(future) in out[3] and "format version 99" in out[3]
    assert out[5] == [["broken", "dist"], ["broken", "layer"], ["broken", "zip"], ["extracted", "dist"]]
    assert err.count("WARNING") == 3 and err.count("set aside") == 3


@pytest.mark.parametrize("order", [("1.0", "2.0"), ("2.0", "1.0")])
def test_same_distribution_in_two_layers_highest_version_wins(tmp_path: Path, order: tuple[str, str]) -> None:
    opt, tmp = tmp_path / "opt", tmp_path / "tmp"
    for v in order:
        _layer(tmp_path, opt, "dup", v, f"V = {v!r}\n".encode())
    code = ("import lambdaslim.bootstrap as b, dup\n"
            "report([dup.V, sorted((v['state'], v['version']) for v in b.status().values())])")
    assert run(code, opt, tmp) == ["2.0", [["extracted", "2.0"], ["shadowed", "1.0"]]]
    assert len(list((tmp / "units").iterdir())) == 1


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_broken_and_shadowed_layers_with_lazy_finding(tmp_path: Path, mode: str) -> None:
    """find_spec extracts nothing and answers for good layers next to broken ones; only the
    winning copy of a distribution is ever extracted, in either mode."""
    opt, tmp = tmp_path / "opt", tmp_path / "tmp"
    _layer(tmp_path, opt, "alpha")
    for v in ("1.0", "2.0"):
        _layer(tmp_path, opt, "dup", v, f"V = {v!r}\n".encode())
    bad_table = _layer(tmp_path, opt, "beta")
    raw = _index(bad_table)
    raw["units"][0]["parts"][-1]["kind"] = "disk"  # a code part called disk: found on first use
    (bad_table / "index.json").write_text(json.dumps(raw))
    future = _layer(tmp_path, opt, "gamma")
    raw = _index(future)
    raw["format_version"] = 1
    (future / "index.json").write_text(json.dumps(raw))
    code = ("import os, sys, importlib.util, importlib.metadata as md, lambdaslim.bootstrap as b\n"
            "units = os.path.join(os.environ['LAMBDASLIM_TMP'], 'units')\n"
            "listing = lambda: sorted(os.listdir(units)) if os.path.isdir(units) else []\n"
            "found = [importlib.util.find_spec(n) is not None for n in ('alpha', 'dup', 'notthere')]\n"
            "out = [found, listing()]\n"
            "for name in ('beta', 'gamma'):\n"
            "    try:\n        importlib.util.find_spec(name)\n    except ModuleNotFoundError as e:\n"
            "        out.append(str(e))\n"
            "import alpha, dup\n"
            "out += [alpha.V, dup.V, md.version('dup'), len(listing())]\n"
            "report(out + [sorted((v['state'], v['version'], v['mode']) for v in b.status().values()"
            " if v['kind'] == 'dist')])")
    out = run(code, opt, tmp, LAMBDASLIM_PYTHON=mode)
    assert out[0] == [True, True, False] and out[1] == []  # found, nothing extracted
    assert str(bad_table) in out[2] and "disk part" in out[2] and "holds 'beta/__init__.py'" in out[2]
    assert str(future) in out[3] and "repack" in out[3]
    assert out[4:8] == [1, "2.0", "2.0", 2]  # alpha and the winning dup: two trees, no more
    assert out[8] == [["broken", "1.0", mode], ["extracted", "1.0", mode], ["extracted", "2.0", mode],
                      ["shadowed", "1.0", mode]]


# -- tools -----------------------------------------------------------------------------------

def test_verify_refuses_an_over_limit_layer_before_unzipping(tmp_path: Path) -> None:
    from lambdaslim.build._verify import VerifyError, unzip_layers

    bomb = _bundle(tmp_path / "bomb.zip", {"python/big.bin": b"\0" * (3 << 20)})
    assert bomb.stat().st_size < 64 << 10
    with pytest.raises(VerifyError, match="refused before unzipping"):
        unzip_layers([str(bomb)], str(tmp_path / "opt"), limit=2 << 20)
    assert not (tmp_path / "opt").exists()


def test_inspect_refuses_an_oversized_index_without_reading_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lambdaslim.build import _inspect

    big = _bundle(tmp_path / "big.zip", {"lambdaslim/abc/index.json": b" " * (_inspect.MAX_INDEX_BYTES + 1)})
    read: list[int] = []
    monkeypatch.setattr(_inspect, "_read_member", lambda *a: read.append(1) or b"")
    data = _inspect.report(str(big))
    assert read == [] and "refused without reading" in data["broken_layers"][0]["error"]
    assert data["checks"]["no_broken_layers"] is False


def _unused(_: Iterator[None]) -> None:  # keep typing imports honest
    pass


def _pack_zip(tmp_path: Path, name: str, version: str = "1.0") -> Path:
    site = tmp_path / f"zsite-{name}-{version}"
    make_dist(site, name, version, {f"{name}/__init__.py": f"V = {version!r}\n".encode()})
    out = tmp_path / f"z-{name}-{version}.zip"
    pack_tree(str(site), str(out), level=1, quiet=True)
    return out


def test_verify_and_inspect_show_broken_and_shadowed_layers(tmp_path: Path) -> None:
    from lambdaslim.build._inspect import report
    from lambdaslim.build._verify import verify

    alpha, old, new = _pack_zip(tmp_path, "alpha"), _pack_zip(tmp_path, "dup", "1.0"), _pack_zip(tmp_path, "dup", "2.0")
    broken = _pack_zip(tmp_path, "beta")
    fixed = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken) as src, zipfile.ZipFile(fixed, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("index.json"):
                data = data.replace(b'"format_version":2', b'"format_version":7')
            dst.writestr(info, data)
    assert report(str(fixed))["broken_layers"][0]["error"].startswith("index format version 7")
    result = verify([str(alpha), str(fixed), str(old), str(new)])
    lines = {r.name.split(" ")[0]: r for r in result.results}
    assert lines["alpha"].ok and lines["dup"].ok
    assert not lines["broken"].ok and "format version 7" in (lines["broken"].error or "")
    assert lines["shadowed"].ok and "shadowed by" in (lines["shadowed"].error or "")
    assert not result.ok
