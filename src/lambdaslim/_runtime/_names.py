"""Which top-level import names a set of files provides (used by packing and zip bundles alike)."""

from __future__ import annotations

import re

_EXT_SUFFIX = re.compile(r"\.(cpython|abi3|pypy)[^.]*\.(so|pyd)$|\.(so|pyd)$")
_NOT_IMPORTABLE = (".dist-info", ".data", ".libs", ".egg-info")


def _module_name(filename: str) -> str | None:
    if filename.endswith(".py"):
        return filename[:-3]
    match = _EXT_SUFFIX.search(filename)
    if match:
        return filename[: match.start()]
    return None


def import_names(files: list[str]) -> list[str]:
    """Top-level import names provided by ``files``; dotted for namespace-package portions."""
    tree: dict[str, set[str]] = {}
    for rel in files:
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            tree.setdefault("/".join(parts[:depth]), set()).add(parts[depth])
    names: set[str] = set()

    def visit(prefix: str, dotted: str) -> None:
        for child in sorted(tree.get(prefix, ())):
            full = f"{prefix}/{child}" if prefix else child
            if full in tree:  # a folder
                if not child.isidentifier():
                    continue
                children = tree[full]
                if "__init__.py" in children or any(_module_name(c) == "__init__" for c in children):
                    names.add(dotted + child)
                else:
                    visit(full, dotted + child + ".")  # namespace portion: go one level down
            else:
                mod = _module_name(child)
                if mod and mod.isidentifier() and mod != "__init__":
                    names.add(dotted + mod)

    for top in sorted(tree.get("", set()) | {f.split("/")[0] for f in files}):
        if top.endswith(_NOT_IMPORTABLE) or top in ("__pycache__", "bin"):
            continue
        if top in tree:
            if not top.isidentifier():
                continue
            children = tree[top]
            if "__init__.py" in children or any(_module_name(c) == "__init__" for c in children):
                names.add(top)
            else:
                before = len(names)
                visit(top, top + ".")
                if len(names) == before:  # no Python at all (nvidia-nvtx-cu12's nvidia/nvtx/lib):
                    # its folders are still importable namespace packages, as from a plain folder
                    names.update(f"{top}.{c}" for c in children if f"{top}/{c}" in tree and c.isidentifier())
        else:
            mod = _module_name(top)
            if mod and mod.isidentifier():
                names.add(mod)
    return sorted(names)
