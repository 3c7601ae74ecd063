"""Compile ``unchecked-hash`` bytecode at pack time, when the packing Python is the target's.

An unchecked-hash .pyc is used without looking at the source's mtime or hash, so no cold start
compiles anything and the mtimes extraction gives files in /tmp do not matter. Bytecode is
version-specific: a pack for another Python ships sources only (and says so).
"""

from __future__ import annotations

import compileall
import os
import py_compile
import re
import sys
from dataclasses import dataclass

from . import _prune, _record


@dataclass
class BytecodeResult:
    compiled: int = 0
    failed: int = 0
    bytes: int = 0
    skipped: str = ""  # why nothing was compiled ("" when compiled)


def interpreter_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def compile_tree(root: str, python: str, *, workers: int | None = None) -> BytecodeResult:
    """Compile every ``.py`` under ``root`` (metadata excluded) for ``python`` ("3.12").

    Each .pyc is added to its distribution's RECORD so the packer puts it in the same unit.
    """
    if python != interpreter_version():
        return BytecodeResult(skipped=(
            f"the packing interpreter is Python {interpreter_version()}, the target {python}: "
            f"shipping sources only (run lambdaslim pack with Python {python} to ship bytecode)"))
    sources = [rel for rel in _prune.walk_files(root)
               if rel.endswith(".py") and not _prune.is_metadata(rel)]
    compileall.compile_dir(
        root, quiet=2, force=True, workers=workers if workers is not None else min(2, os.cpu_count() or 1),
        rx=re.compile(r"\.(dist|egg)-info[/\\]"),
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    owners = _record.owners(root)
    added: dict[str, list[str]] = {}
    result = BytecodeResult()
    for rel in sources:
        pyc = _cache_path(rel)
        full = os.path.join(root, pyc)
        if not os.path.isfile(full):
            result.failed += 1  # syntax from another Python version, templates named .py
            continue
        result.compiled += 1
        result.bytes += os.path.getsize(full)
        owner = owners.get(rel)
        if owner is not None:
            added.setdefault(owner, []).append(pyc)
    _record.sync_records(root, added=added)
    return result


def _cache_path(rel: str) -> str:
    folder, _, name = rel.rpartition("/")
    pyc = f"__pycache__/{name[:-3]}.{sys.implementation.cache_tag}.pyc"
    return f"{folder}/{pyc}" if folder else pyc
