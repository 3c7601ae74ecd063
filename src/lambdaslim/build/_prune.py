"""Safe pruning of an installed tree (``pip install --target``) before it is packed.

Each default step removes a kind of file that no import needs: test folders inside packages,
bytecode caches from the build machine, ``.pyi`` stubs, docs and examples folders, C/C++
headers and other build-only files, bundled test and benchmark executables, and the console
scripts pip wrote for the build machine. Nothing under ``*.dist-info``/``*.egg-info`` is ever
removed: ``importlib.metadata`` reads it (entry points, versions, files).

RECORD files are kept consistent with the tree: rows of removed files are dropped, rows of
files added later (bytecode) are appended, rows of rewritten files (stripped libraries) get
their new hash and size. The packer assigns files to distributions through RECORD.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

from . import _elf, _needs
from ._errors import PackError
from ._record import sync_records

METADATA_SUFFIXES = (".dist-info", ".egg-info")


@dataclass(frozen=True)
class Step:
    name: str
    description: str


STEPS: tuple[Step, ...] = (
    Step("tests", "tests/ and test/ folders inside packages"),
    Step("bytecode-cache", "__pycache__ folders and stale .pyc beside their source"),
    Step("stubs", ".pyi type stubs"),
    Step("docs", "doc/, docs/, example/, examples/ folders that are not Python packages"),
    Step("headers", "include/ folders, C/C++ headers, Cython sources, static libraries, cmake/pkgconfig files"),
    Step("executables", "bundled test and benchmark programs (e.g. torch/bin/test_*)"),
    Step("scripts", "the top-level bin/ of console scripts written for the build machine"),
)
DEFAULT_STEPS = tuple(s.name for s in STEPS)

_TEST_DIRS = {"tests", "test"}
_DOC_DIRS = {"doc", "docs", "example", "examples"}
_BUILD_DIRS = {"include", "cmake", "pkgconfig"}
_BUILD_SUFFIXES = (".h", ".hh", ".hpp", ".hxx", ".cuh", ".inc", ".pxd", ".pyx", ".pxi", ".a")
_TEST_PROGRAM = re.compile(r"test|bench|^protoc", re.IGNORECASE)


@dataclass
class StepResult:
    name: str
    description: str
    files: int = 0
    bytes: int = 0
    paths: list[str] = field(default_factory=list)  # what it removed


@dataclass
class PruneReport:
    """Bytes and files removed per step, and the tree's size before and after."""

    before_bytes: int = 0
    before_files: int = 0
    steps: list[StepResult] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    named: dict[str, str] = field(default_factory=dict)  # {relpath a step spared: who names it}

    @property
    def removed_bytes(self) -> int:
        return sum(s.bytes for s in self.steps)

    @property
    def after_bytes(self) -> int:
        return self.before_bytes - self.removed_bytes

    def render(self) -> str:
        from .._size import format_size

        lines = [f"{'installed':<16} {format_size(self.before_bytes):>10} in {self.before_files} files"]
        for s in self.steps:
            lines.append(f"  - {s.name:<14} {format_size(s.bytes):>10} in {s.files} files  ({s.description})")
        lines.append(f"{'after pruning':<16} {format_size(self.after_bytes):>10} in "
                     f"{self.before_files - sum(s.files for s in self.steps)} files")
        return "\n".join(lines)


def match(patterns: Sequence[str], rel: str) -> bool:
    """Whether ``rel`` (a POSIX path in the tree) matches one of ``patterns``.

    A pattern without ``/`` matches any single path component (``tests``, ``*.pyi``); one with
    ``/`` matches the path from the tree's top or any folder above it (``torch/bin`` covers
    everything inside it, ``torch/lib/libtorch_*.so`` one set of files).
    """
    parts = rel.split("/")
    for pat in patterns:
        pat = pat.strip("/")
        if not pat:
            continue
        if "/" not in pat:
            if any(fnmatch.fnmatchcase(p, pat) for p in parts):
                return True
        else:
            for depth in range(1, len(parts) + 1):
                if fnmatch.fnmatchcase("/".join(parts[:depth]), pat):
                    return True
    return False


def is_metadata(rel: str) -> bool:
    """Anything inside a ``*.dist-info``/``*.egg-info`` folder (or such a file) at the top."""
    return rel.split("/")[0].endswith(METADATA_SUFFIXES)


def walk_files(root: str) -> dict[str, int]:
    """{relpath: size} for every regular file under ``root``."""
    out: dict[str, int] = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                out[os.path.relpath(full, root).replace(os.sep, "/")] = os.path.getsize(full)
    return out


def _package_dirs(files: Iterable[str]) -> set[str]:
    return {f.rpartition("/")[0] for f in files if f.rpartition("/")[2] == "__init__.py"}


def _rule(step: str, packages: set[str], files: dict[str, int]) -> Callable[[str], bool]:
    """The predicate of a default step over relpaths."""
    if step == "tests":
        def tests(rel: str) -> bool:
            parts = rel.split("/")
            if parts[0] == "tests" and len(parts) > 1:
                return True  # a stray top-level tests package some projects install
            if len(parts) > 1 and parts[-1] == "conftest.py":
                return True  # pytest configuration
            return any(p in _TEST_DIRS for p in parts[1:-1])
        return tests
    if step == "bytecode-cache":
        def cache(rel: str) -> bool:
            parts = rel.split("/")
            if "__pycache__" in parts[:-1]:
                return True
            if rel.endswith((".pyc", ".pyo")):
                return rel[:-1] in files  # legacy cache beside its source; sourceless stays
            return False
        return cache
    if step == "stubs":
        return lambda rel: rel.endswith(".pyi")
    if step == "docs":
        def docs(rel: str) -> bool:
            parts = rel.split("/")
            for depth, p in enumerate(parts[:-1]):
                if p in _DOC_DIRS and "/".join(parts[: depth + 1]) not in packages:
                    return True
            return False
        return docs
    if step == "headers":
        def headers(rel: str) -> bool:
            parts = rel.split("/")
            for depth, p in enumerate(parts[:-1]):
                if p in _BUILD_DIRS and "/".join(parts[: depth + 1]) not in packages:
                    return True
            return rel.endswith(_BUILD_SUFFIXES)
        return headers
    if step == "executables":
        def programs(rel: str) -> bool:
            parts = rel.split("/")
            for depth in range(1, len(parts) - 1):
                if parts[depth] == "bin" and "/".join(parts[: depth + 1]) not in packages:
                    return any(_TEST_PROGRAM.search(p) for p in parts[depth + 1:])
            return False
        return programs
    if step == "scripts":
        return lambda rel: rel.startswith("bin/") and "bin" not in packages
    raise PackError(f"unknown pruning step {step!r} (known: {', '.join(DEFAULT_STEPS)})")


def prune(
    root: str,
    *,
    steps: Sequence[str] = DEFAULT_STEPS,
    keep: Sequence[str] = (),
    drop: Sequence[str] = (),
) -> PruneReport:
    """Remove what ``steps`` select and what ``drop`` matches, except what ``keep`` matches.

    ``keep`` wins over every step and over ``drop``; metadata is never removed. RECORD files
    are updated to list only what remains.
    """
    if not os.path.isdir(root):
        raise PackError(f"{root}: no such folder", root)
    files = walk_files(root)
    packages = _package_dirs(files)
    report = PruneReport(before_bytes=sum(files.values()), before_files=len(files))
    remaining = dict(files)
    plan = [(s, _rule(s, packages, files), next(x.description for x in STEPS if x.name == s))
            for s in steps]
    named = _needs.named_by_entry_points(root, set(files)) if plan else {}
    if drop:
        plan.append(("drop", lambda rel: match(drop, rel), "--drop " + " ".join(drop)))
    for name, rule, description in plan:
        result = StepResult(name, description)
        chosen = {rel for rel in remaining
                  if not is_metadata(rel) and not (keep and match(keep, rel)) and rule(rel)}
        if name != "drop":  # an explicit --drop is the user's word; a default step spares names
            spared = chosen & named.keys()
            report.named.update((rel, named[rel]) for rel in spared)
            chosen -= spared
        if name == "tests":
            rescued = imported_from_outside(root, set(remaining), chosen)
            in_tests = rescued | {rel for rel in named if _needs.test_folder(rel)}
            found = _needs.discovered(root, in_tests, set(remaining))
            report.named.update((rel, why) for rel, why in found.items() if rel in chosen)
            chosen -= rescued | found.keys()
        for rel in sorted(chosen):
            result.files += 1
            result.bytes += remaining.pop(rel)
            result.paths.append(rel)
            report.removed.append(rel)
        report.steps.append(result)
    for rel in report.removed:  # what an explicit --drop took is not "kept"
        report.named.pop(rel, None)
    remove_files(root, report.removed)
    return report


_EXT = re.compile(r"\.(?:cpython|abi3|pypy)[^./]*\.so$|\.so$")


def _module_files(files: Iterable[str]) -> dict[str, str]:
    """{dotted module name: relpath} for every .py and extension module in the tree."""
    out: dict[str, str] = {}
    for rel in files:
        if rel.endswith(".py"):
            stem = rel[:-3]
        else:
            m = _EXT.search(rel)
            if not m:
                continue
            stem = rel[: m.start()]
        if stem.endswith("/__init__"):
            stem = stem[: -len("/__init__")]
        out.setdefault(stem.replace("/", "."), rel)
    return out


def _imports(path: str, rel: str) -> set[str]:
    """Dotted names a module imports (absolute, and relative ones resolved), anywhere in it."""
    import ast

    try:
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read(), filename=path)
    except (SyntaxError, ValueError, OSError):
        return set()
    package = rel.rpartition("/")[0].replace("/", ".")
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".") if package else []
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, base] if base else anchor)
            if base:
                names.add(base)
                names.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return names


def imported_from_outside(root: str, present: set[str], removing: set[str]) -> set[str]:
    """The files in ``removing`` that the rest of the tree imports (and what those import).

    numpy.testing, for one, imports ``numpy._core.tests._natype``: removing every tests folder
    blindly breaks ``from numpy import *``. The import statements of every module that stays
    (only those mentioning "test") are read with :mod:`ast`; the modules they name inside
    ``removing`` are kept, with their packages' ``__init__`` files, and read in turn.
    """
    modules = _module_files(present)
    rescued: set[str] = set()
    queue = [rel for rel in present - removing if rel.endswith(".py")]
    first = True
    while queue:
        next_queue: list[str] = []
        for rel in queue:
            full = os.path.join(root, rel)
            if first:
                try:
                    with open(full, "rb") as fh:
                        if b"test" not in fh.read():
                            continue
                except OSError:
                    continue
            for name in _imports(full, rel):
                parts = name.split(".")
                for depth in range(1, len(parts) + 1):
                    target = modules.get(".".join(parts[:depth]))
                    if target and target in removing and target not in rescued:
                        rescued.add(target)
                        if target.endswith(".py"):
                            next_queue.append(target)
        first = False
        queue = next_queue
    add_parent_inits(rescued, removing)  # the packages above a rescued module must import too
    return rescued


def remove_files(root: str, rels: Iterable[str]) -> None:
    """Delete ``rels`` under ``root``, then folders left empty, then fix every RECORD."""
    dirs: set[str] = set()
    for rel in rels:
        try:
            os.unlink(os.path.join(root, rel))
        except FileNotFoundError:
            pass
        parent = rel.rpartition("/")[0]
        while parent:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    for d in sorted(dirs, key=lambda d: -d.count("/")):
        try:
            os.rmdir(os.path.join(root, d))
        except OSError:
            pass  # not empty
    sync_records(root)


def strip_tree(root: str, *, machine: str) -> _elf.StripResult:
    """``--strip``: every shared library under ``root`` (never metadata) stripped where
    :func:`~lambdaslim.build._elf.strip_libraries` finds it safe, and the RECORD files updated."""
    libs = [os.path.join(root, rel) for rel in walk_files(root)
            if ".so" in rel.rpartition("/")[2] and not is_metadata(rel)]
    result = _elf.strip_libraries(libs, machine=machine)
    sync_records(root, changed=[os.path.relpath(p, root).replace(os.sep, "/") for p in result.stripped])
    return result


def copy_tree(src: str, dest: str) -> None:
    """Copy an installed tree (used when the user's folder must stay untouched)."""
    shutil.copytree(src, dest, symlinks=False)


def add_parent_inits(kept: set[str], candidates: Collection[str]) -> None:
    """Add to ``kept`` the ``__init__.py`` (from ``candidates``) of every package above its files,
    so a kept module stays importable."""
    files = candidates if isinstance(candidates, (set, frozenset)) else set(candidates)
    for rel in list(kept):
        kept |= _needs.parents(rel, files)
