"""What each distribution names as needed at run time, collected before pruning removes anything.

Two kinds of naming are read:

- **entry points** (``entry_points.txt``): the module an entry point names is kept with the
  packages above it. A target that is a folder without ``__init__`` (numpy's ``pkg_config``
  entry point names ``numpy._core.lib.pkgconfig``, a folder holding ``numpy.pc``) is kept
  whole. A target inside a ``test``/``tests`` folder (onnx's ``backend-test-tools`` names
  ``onnx.backend.test.cmd_tools``) keeps that whole folder: it is a library, not tests.
- **discovery**: a module that lists and imports modules at run time
  (``pkgutil.iter_modules``, ``pkgutil.walk_packages``, ``importlib.import_module`` or
  ``__import__`` with a computed name) reaches modules no import statement names. When such a
  module is kept inside a test folder (onnx's ``backend/test/case/utils.py``, reached from
  ``onnx.defs.gen_doc``), the whole test folder is kept.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from . import _record
from .._size import format_size

TEST_DIRS = frozenset({"test", "tests"})
_EXT = re.compile(r"\.(?:cpython|abi3|pypy)[^./]*\.so$|\.so$")
_DISCOVERY = (b"iter_modules", b"walk_packages", b"import_module", b"__import__")


@dataclass(frozen=True)
class EntryPoint:
    dist_info: str
    group: str
    name: str
    value: str  # "module[:attr][ [extras]]"

    @property
    def module(self) -> str:
        return self.value.split("[")[0].split(":")[0].strip()

    def describe(self) -> str:
        dist = self.dist_info.split("-")[0]
        return f"{dist}'s entry point {self.name} ({self.group}) = {self.value}"


def entry_points(root: str) -> list[EntryPoint]:
    """Every entry point of every distribution in ``root``."""
    out: list[EntryPoint] = []
    for d in _record.dist_infos(root):
        try:
            with open(os.path.join(root, d, "entry_points.txt"), encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        group = ""
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("[") and line.endswith("]"):
                group = line[1:-1].strip()
            elif "=" in line and group:
                name, _, value = line.partition("=")
                out.append(EntryPoint(d, group, name.strip(), value.strip()))
    return out


def test_folder(rel: str) -> str | None:
    """The first ``test``/``tests`` folder below the top package that holds ``rel``, if any."""
    parts = rel.split("/")
    for depth in range(1, len(parts) - 1):
        if parts[depth] in TEST_DIRS:
            return "/".join(parts[: depth + 1])
    return None


def _under(folder: str, files: Iterable[str]) -> set[str]:
    prefix = folder + "/"
    return {f for f in files if f.startswith(prefix)}


def module_files(module: str, files: set[str]) -> set[str]:
    """The files that make ``module`` importable: its source or extension, its package's
    ``__init__``, or every file of a folder without ``__init__`` (a namespace or data folder)."""
    base = module.replace(".", "/")
    found = {f for f in (f"{base}.py", f"{base}/__init__.py") if f in files}
    folder = f"{base}/"
    found.update(f for f in files if f.startswith(base + ".") and "/" not in f[len(base):]
                 and _EXT.search(f))
    if not found:
        found = {f for f in files if f.startswith(folder)}
    return found


def parents(rel: str, files: set[str] | frozenset[str]) -> set[str]:
    """The ``__init__.py`` files of the packages above ``rel``."""
    out: set[str] = set()
    parent = rel.rpartition("/")[0]
    while parent:
        init = f"{parent}/__init__.py"
        if init in files:
            out.add(init)
        parent = parent.rpartition("/")[0]
    return out


def named_by_entry_points(root: str, files: set[str]) -> dict[str, str]:
    """{relpath: why} of every file an entry point needs (see the module's docstring)."""
    out: dict[str, str] = {}
    for ep in entry_points(root):
        targets = module_files(ep.module, files)
        keep = set(targets)
        for rel in targets:
            keep |= parents(rel, files)
            folder = test_folder(rel)
            if folder:
                keep |= _under(folder, files)
        for rel in keep:
            out.setdefault(rel, ep.describe())
    return out


def discovers(path: str) -> bool:
    """Whether the module at ``path`` lists or imports modules by computed names."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    if not any(word in data for word in _DISCOVERY):
        return False
    try:
        tree = ast.parse(data, filename=path)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("iter_modules", "walk_packages"):
            return True
        if name in ("import_module", "__import__") and node.args and not isinstance(node.args[0], ast.Constant):
            return True
    return False


def discovered(root: str, kept: set[str], files: set[str]) -> dict[str, str]:
    """{relpath: why}: the whole test folder of every kept module in one that discovers modules."""
    out: dict[str, str] = {}
    for rel in sorted(kept):
        folder = test_folder(rel)
        if folder and rel.endswith(".py") and discovers(os.path.join(root, rel)):
            for f in _under(folder, files):
                out.setdefault(f, f"{rel.replace('/', '.')[:-3]} imports the modules of {folder}/ "
                                  "at run time (pkgutil/importlib discovery)")
    return out


def named_notes(named: dict[str, str], original: dict[str, int]) -> list[str]:
    """One note per thing a package names that a pruning step spared (folder, size, who)."""
    groups: dict[str, list[str]] = {}
    for rel, why in named.items():
        groups.setdefault(why, []).append(rel)
    notes = []
    for why, rels in sorted(groups.items()):
        where = os.path.commonpath(rels) if len(rels) > 1 else rels[0]
        size = sum(original.get(rel, 0) for rel in rels)
        notes.append(f"kept {where}{'/' if len(rels) > 1 else ''} ({len(rels)} files, "
                     f"{format_size(size)}) that pruning would remove: {why}")
    return notes
