"""Memory mode: code that lists or opens its own sources by path finds them (``_sources``).

transformers builds its lazy import table by listing ``transformers/models/`` and reading every
``.py`` there; ``lister`` below does the same (``os.scandir``, ``os.listdir``, ``os.walk``,
``pathlib``, ``glob``) and must see in memory mode exactly what it sees in disk mode.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import make_dist, unzip_layer
from lambdaenv import finish, run, start
from lambdaslim._runtime._budget import MARKER
from lambdaslim._runtime._format import disk_bytes
from lambdaslim.build._pack import pack_tree

INIT = b'''import glob, os, pathlib, re
HERE = os.path.dirname(__file__)

def table():
    """What transformers' create_import_structure_from_path does: list, open, parse."""
    out = {}
    models = os.path.join(HERE, "models")
    for entry in sorted(os.scandir(models), key=lambda e: e.name):
        if entry.is_dir() and entry.name != "__pycache__":
            for name in sorted(os.listdir(entry.path)):
                if name.endswith(".py"):
                    with open(os.path.join(entry.path, name), encoding="utf-8") as fh:
                        found = re.search(r"__all__ = \\[(.*)\\]", fh.read())
                    out[f"{entry.name}/{name}"] = found.group(1) if found else None
    return out

def walked():
    return sorted(os.path.relpath(os.path.join(d, f), HERE) for d, _, fs in os.walk(os.path.join(HERE, "models")) for f in fs)

def others():
    return sorted(str(p.name) for p in pathlib.Path(HERE, "other").iterdir()), sorted(
        os.path.basename(p) for p in glob.glob(os.path.join(HERE, "other", "*.py")))
'''
FILES = {
    "lister/__init__.py": INIT,
    "lister/models/__init__.py": b"",
    "lister/models/bert/__init__.py": b"",
    "lister/models/bert/modeling_bert.py": b"__all__ = ['BertModel']\nclass BertModel: pass\n",
    "lister/models/gpt2/__init__.py": b"",
    "lister/models/gpt2/modeling_gpt2.py": b"__all__ = ['GPT2Model']\n" + b"# padding\n" * 2000,
    "lister/models/gpt2/weights.bin": b"\x01" * 300,  # a data file: on disk in both modes
    "lister/other/__init__.py": b"",
    "lister/other/helper.py": b"def source():\n    return open(__file__).read()\n",
    "lister/untouched/__init__.py": b"",
    "lister/untouched/big.py": b"X = 1\n" + b"# never listed\n" * 5000,
}


@pytest.fixture
def opt(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    make_dist(site, "lister", "1.0", FILES)
    pack_tree(str(site), str(tmp_path / "l.zip"), level=1, quiet=True)
    return unzip_layer(tmp_path / "l.zip", tmp_path / "opt")


def _tree(tmp: Path) -> Path:
    (tree,) = (tmp / "units").iterdir()
    return tree


MODELS = [v for k, v in FILES.items() if k.startswith("lister/models/") and k.endswith(".py")]
MODELS_BYTES = disk_bytes([len(v) for v in MODELS], 0)  # whole blocks, as trees are counted


def _py(tree: Path) -> list[str]:
    return sorted(str(p.relative_to(tree)) for p in tree.rglob("*.py"))


LIST = "import lambdaslim.bootstrap, lister\nreport([lister.table(), lister.walked()])"


def test_listing_sees_the_same_sources_in_memory_as_on_disk(opt: Path, tmp_path: Path) -> None:
    disk = run(LIST, opt, tmp_path / "d", LAMBDASLIM_PYTHON="disk")
    memory = run(LIST, opt, tmp_path / "m", LAMBDASLIM_PYTHON="memory")
    assert memory == disk
    table, walked = memory
    assert table == {"bert/__init__.py": None, "bert/modeling_bert.py": "'BertModel'",
                     "gpt2/__init__.py": None, "gpt2/modeling_gpt2.py": "'GPT2Model'"}
    assert "models/gpt2/weights.bin" in walked and "models/bert/modeling_bert.py" in walked
    tree = _tree(tmp_path / "m")
    assert tree.name.endswith(".m")
    # Only the listed folder's code was written: lister/__init__.py, other/ and untouched/ were not.
    assert _py(tree) == ["lister/models/__init__.py", "lister/models/bert/__init__.py",
                         "lister/models/bert/modeling_bert.py", "lister/models/gpt2/__init__.py",
                         "lister/models/gpt2/modeling_gpt2.py"]
    for rel in _py(tree):
        assert (tree / rel).read_bytes() == FILES[rel]


def test_pathlib_glob_and_open_of_own_file(opt: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    out = run("import lambdaslim.bootstrap, lister, lister.other.helper as h\n"
              "report([lister.others(), h.source()])", opt, tmp)
    names, globbed = out[0]
    assert names == ["__init__.py", "helper.py"] and globbed == ["__init__.py", "helper.py"]
    assert out[1] == FILES["lister/other/helper.py"].decode()
    assert _py(_tree(tmp)) == ["lister/other/__init__.py", "lister/other/helper.py"]


def test_one_opened_file_is_written_alone(opt: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    assert run("import lambdaslim.bootstrap, lister.other.helper as h\nreport(h.source())", opt, tmp) \
        == FILES["lister/other/helper.py"].decode()
    assert _py(_tree(tmp)) == ["lister/other/helper.py"]


def test_written_sources_are_counted_in_the_budget_and_reused(opt: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    code = ("import lambdaslim.bootstrap, lambdaslim.budget as bb, lister\n"
            "before = bb.usage()['packages']\nlister.table()\nreport([before, bb.usage()['packages']])")
    before, after = run(code, opt, tmp)
    assert after - before == MODELS_BYTES
    tree = _tree(tmp)
    assert json.loads((tree / MARKER).read_text())["disk_bytes"] == after
    # A warm process lists again: nothing is written twice, nothing counted twice.
    mtimes = {p: p.stat().st_mtime_ns for p in tree.rglob("*.py")}
    assert run(code, opt, tmp) == [after, after]
    assert {p: p.stat().st_mtime_ns for p in tree.rglob("*.py")} == mtimes


def test_processes_listing_at_once_write_each_file_once(opt: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    run("import lambdaslim.bootstrap, lister\nreport(0)", opt, tmp)  # the tree alone
    tree = _tree(tmp)
    alone = json.loads((tree / MARKER).read_text())["disk_bytes"]
    procs = [start("import lambdaslim.bootstrap, lambdaslim.budget as bb, lister\n"
                   "report([lister.table(), bb.usage()['packages']])", opt, tmp) for _ in range(4)]
    results = [finish(p) for p in procs]
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    tables = [r[0] for _, r, _ in results]
    assert all(t == tables[0] for t in tables) and len(tables[0]) == 4
    assert json.loads((tree / MARKER).read_text())["disk_bytes"] == alone + MODELS_BYTES
    assert sorted(p.read_bytes() for p in (tree / "lister" / "models").rglob("*.py")) == sorted(MODELS)
    assert not os.listdir(tmp / "staging")


def test_sources_that_do_not_fit_are_refused_before_writing(opt: Path, tmp_path: Path) -> None:
    """The tree fits the cap, the listed sources do not (by one byte): our StorageBudgetError
    from the listing itself, and nothing partial left."""
    tmp = tmp_path / "tmp"
    code = ("import errno, os, lambdaslim.bootstrap, lister\n"
            "from lambdaslim import StorageBudgetError\n"
            "try:\n    lister.table()\nexcept StorageBudgetError as e:\n"
            "    report([e.errno == errno.ENOSPC, e.needed, e.available, str(e)])\n"
            "else:\n    report('listed')\n")
    run("import lambdaslim.bootstrap, lister\nreport(0)", opt, tmp_path / "probe")  # the tree alone
    alone = json.loads((_tree(tmp_path / "probe") / MARKER).read_text())["disk_bytes"]
    limit = str(alone + MODELS_BYTES - 1)
    enospc, needed, available, message = run(code, opt, tmp, LAMBDASLIM_TMP_LIMIT=limit)
    assert enospc and needed == MODELS_BYTES and available < needed and "lister" in message
    assert _py(_tree(tmp)) == [] and not os.listdir(tmp / "staging") and not os.listdir(tmp / "reserve")


def test_released_tree_is_listed_again_after_reimport(opt: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    out = run("import sys, lambdaslim.bootstrap as b, lister\n"
              "first = lister.table()\n"
              "b.release('lister')\n"
              "for m in [m for m in sys.modules if m.startswith('lister')]: del sys.modules[m]\n"
              "import lister\n"
              "report([first == lister.table(), len(first)])", opt, tmp)
    assert out == [True, 4]


TRANSFORMERS = '''
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, PreTrainedTokenizerFast
tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
result = [fast("hello world there")["input_ids"], BertConfig(hidden_size=32).hidden_size]
'''


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


@pytest.mark.slow
def test_real_transformers_in_memory_mode_extracts_only_what_it_imports(tmp_path: Path) -> None:
    """transformers lists and reads its own sources at import; with scikit-learn beside it,
    it probes for sklearn (find_spec) without importing it: nothing of that is extracted."""
    import shutil
    import subprocess
    import sys

    from conftest import pip_target

    site = tmp_path / "site"
    shutil.copytree(pip_target(["transformers", "scikit-learn"]), site)
    plain = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = [{str(site)!r}]\n{TRANSFORMERS}\n"
         "import importlib.metadata as md, json\n"
         "tops = {m.split('.')[0] for m in list(sys.modules)}\n"
         "print(json.dumps([result, sorted({d for t, ds in md.packages_distributions().items() if t in tops for d in ds})]))"],
        capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    expected, imported = json.loads(plain.stdout.splitlines()[-1])
    pack_tree(str(site), str(tmp_path / "l.zip"), level=1, quiet=True)
    opt = unzip_layer(tmp_path / "l.zip", tmp_path / "opt")
    tmp = tmp_path / "tmp"
    out = run("import lambdaslim.bootstrap as b\n" + TRANSFORMERS +
              "report([result, sorted(k for k, v in b.status().items() if v['state'] == 'extracted'),"
              " b.status()['transformers']['mode']])", opt, tmp, LAMBDASLIM_PYTHON="memory")
    got, extracted, mode = out
    assert got == expected and expected[0][:2] == [1, 2] and mode == "memory"
    assert {_norm(d) for d in extracted} == {_norm(d) for d in imported}
    assert not {"scikit-learn", "scipy"} & {_norm(d) for d in extracted}
    tree = next(p for p in (tmp / "units").iterdir() if p.name.startswith("transformers-"))
    assert (tree / "transformers" / "models" / "bert" / "configuration_bert.py").is_file()
    assert not list(tree.rglob("*.pyc"))
