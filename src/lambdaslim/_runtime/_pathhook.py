"""The ``sys.path_hooks`` entry for memory-mode trees (``<root>/units/<key>.m/...``).

Such a tree holds only shared libraries, extension modules and data files, so Python's own
FileFinder would see its packages as empty namespace folders. The hook claims every folder
in one and answers from the unit's file table instead: ``find_spec`` for packages, modules
and namespace portions (nothing is extracted by finding), and ``iter_modules`` for
``pkgutil.iter_modules`` / ``walk_packages``. Other paths are refused at the cost of one
string comparison.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Iterator
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    from ._loader import Tree

MEMORY_SUFFIX = ".m"  # a memory-mode tree is units/<unit key>.m


class TreeImporter:
    """Path entry finder for one folder of a memory-mode tree."""

    def __init__(self, tree: Tree, rel: str) -> None:
        self.tree, self.rel = tree, rel
        self.path = os.path.join(tree.root, *rel.split("/")) if rel else tree.root

    def __repr__(self) -> str:
        return f"<TreeImporter {self.path!r}>"

    def find_spec(self, fullname: str, target: ModuleType | None = None) -> ModuleSpec | None:
        from ._loader import spec_for  # loaded with the first memory tree, not at bootstrap import

        tail = fullname.rpartition(".")[2]
        return spec_for(self.tree, fullname, f"{self.rel}/{tail}" if self.rel else tail)

    def invalidate_caches(self) -> None:
        """The file table never changes."""

    def iter_modules(self, prefix: str = "") -> Iterator[tuple[str, bool]]:
        """(name, is package) of every module in this folder, as pkgutil lists a plain folder."""
        from ._loader import resolve

        files = self.tree.files
        seen: set[str] = set()
        for child in sorted(files.children.get(self.rel, ())):
            rel = f"{self.rel}/{child}" if self.rel else child
            if files.is_dir(rel):
                name = child
                if not name.isidentifier() or "." in name:
                    continue
                found = resolve(files, rel)
                if found is None or found[1] is None:
                    continue  # pkgutil lists only folders with an __init__
            else:
                stem = _module_name(child)
                if stem is None or stem == "__init__" or not stem.isidentifier():
                    continue
                name = stem
            if name not in seen:
                seen.add(name)
                yield prefix + name, files.is_dir(rel)


def _module_name(filename: str) -> str | None:
    """The module name of a file (as inspect.getmodulename, without importing inspect)."""
    from importlib.machinery import all_suffixes

    for suffix in sorted(all_suffixes(), key=len, reverse=True):
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return None


def make_hook(units_root: str, tree_of: Callable[[str], Tree | None]) -> Callable[[str], TreeImporter]:
    """A path hook claiming folders under ``units_root/<key>.m``; ``tree_of(key)`` gives the tree."""
    prefix = os.path.abspath(units_root) + os.sep

    def lambdaslim_tree_hook(path: str) -> TreeImporter:
        if not path.startswith(prefix):
            raise ImportError("not a lambdaslim tree")
        key, _, rel = path[len(prefix):].partition(os.sep)
        if not key.endswith(MEMORY_SUFFIX):
            raise ImportError("not a lambdaslim memory tree")
        tree = tree_of(key[: -len(MEMORY_SUFFIX)])
        if tree is None:
            raise ImportError(f"no packed unit {key!r}")
        rel = rel.strip(os.sep).replace(os.sep, "/")
        if rel and not tree.files.is_dir(rel):
            raise ImportError(f"{path} is no folder of {key}")
        return TreeImporter(tree, rel)

    return lambdaslim_tree_hook
