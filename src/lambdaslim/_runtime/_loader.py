"""Specs and loaders for modules of packed distributions: finding is not importing.

A spec is built from the unit's file table alone (:func:`spec_for`); its ``origin``,
``__file__`` and ``__path__`` point into the unit's tree under the extraction root, which
need not exist yet. The tree is extracted when the module is *loaded* (``create_module``),
so ``importlib.util.find_spec`` extracts nothing.

- memory mode: :class:`MemoryLoader` runs a module's bytecode (or compiles its source) from
  the code parts in memory; ``get_source`` serves tracebacks, ``linecache`` and
  ``inspect.getsource``; ``get_data`` serves the code files, and reads any other file from
  the tree; resources are read from the tree (data files are written there);
- extension modules and, in disk mode, every module: the standard file loaders, which first
  make the tree exist.
"""

from __future__ import annotations

import _imp
import marshal
import os
import sys
from importlib._bootstrap_external import MAGIC_NUMBER, decode_source  # frozen: free, unlike importlib.util
from importlib.machinery import (EXTENSION_SUFFIXES, ExtensionFileLoader, ModuleSpec,
                                 SourceFileLoader, SourcelessFileLoader)

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable
    from types import CodeType, ModuleType
    from typing import Any

    from ._memory import UnitFiles


class Tree:
    """One unit's tree as loaders see it: where it is (or will be), its files, how to make it
    exist (``activate``), and the outermost-load bracket ``enter``/``leave`` (after-import cleanup)."""

    def __init__(self, root: str, files: UnitFiles, activate: Callable[[], None],
                 enter: Callable[[], None], leave: Callable[[], None], memory: bool) -> None:
        self.root, self.files, self.memory = root, files, memory
        self.activate, self.enter, self.leave = activate, enter, leave

    def rel(self, path: str) -> str | None:
        """``path`` relative to the tree, or None when it lies elsewhere."""
        prefix = self.root + os.sep
        return path[len(prefix):] if path.startswith(prefix) else None


def _pyc_rel(stem: str) -> str:
    folder, _, name = stem.rpartition("/")
    opt = sys.flags.optimize
    tail = f"{name}.{sys.implementation.cache_tag}{f'.opt-{opt}' if opt else ''}.pyc"
    return f"{folder}/__pycache__/{tail}" if folder else f"__pycache__/{tail}"


def _module_file(files: UnitFiles, stem: str) -> tuple[str, str, str | None] | None:
    """(kind, file, bytecode file) of the module ``stem`` (no suffix): what FileFinder would pick."""
    for suffix in EXTENSION_SUFFIXES:
        if files.has(stem + suffix):
            return "ext", stem + suffix, None
    if files.has(stem + ".py"):
        pyc = _pyc_rel(stem)
        return "py", stem + ".py", pyc if files.has(pyc) else None
    if files.has(stem + ".pyc"):
        return "pyc", stem + ".pyc", stem + ".pyc"
    return None


def resolve(files: UnitFiles, rel: str) -> tuple[bool, tuple[str, str, str | None] | None] | None:
    """What ``rel`` (a dotted name as a path) is in the unit: (is package, module file);
    a namespace portion is (True, None); None when the unit has no such module."""
    if files.is_dir(rel):
        init = _module_file(files, rel + "/__init__")
        if init is not None:
            return True, init
    found = _module_file(files, rel)
    if found is not None:
        return False, found
    if files.is_dir(rel) and rel.rpartition("/")[2].isidentifier():
        return True, None
    return None


def spec_for(tree: Tree, fullname: str, rel: str) -> ModuleSpec | None:
    """The spec of ``fullname``, found at ``rel`` in ``tree``, from the index alone."""
    found = resolve(tree.files, rel)
    if found is None:
        return None
    is_pkg, module = found
    folder = os.path.join(tree.root, *rel.split("/"))
    if module is None:  # a namespace portion (PEP 420): its folder must exist, it has no loader
        tree.activate()  # to extract the unit later (nvidia-nvtx-cu12 holds no Python at all)
        spec = ModuleSpec(fullname, None, is_package=True)
        spec.submodule_search_locations = [folder]
        return spec
    kind, file_rel, pyc_rel = module
    origin = os.path.join(tree.root, *file_rel.split("/"))
    loader: Any
    if kind == "ext":
        loader = LazyExtensionLoader(fullname, origin, tree)
    elif tree.memory:
        loader = MemoryLoader(fullname, origin, tree, file_rel if kind == "py" else None, pyc_rel, is_pkg)
    elif kind == "py":
        loader = LazySourceLoader(fullname, origin, tree)
    else:
        loader = LazySourcelessLoader(fullname, origin, tree)
    spec = ModuleSpec(fullname, loader, origin=origin, is_package=is_pkg)
    spec.has_location = True
    if is_pkg:
        spec.submodule_search_locations = [folder]
    return spec


class _Activating:
    """Mixin for the standard file loaders: the tree is made to exist before any file is read."""

    tree: Tree

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        self.tree.activate()
        result: ModuleType | None = super().create_module(spec)  # type: ignore[misc]
        return result

    def exec_module(self, module: ModuleType) -> None:
        self.tree.enter()
        try:
            super().exec_module(module)  # type: ignore[misc]
        finally:
            self.tree.leave()

    def get_data(self, path: str) -> bytes:
        self.tree.activate()
        data: bytes = super().get_data(path)  # type: ignore[misc]
        return data


class LazyExtensionLoader(_Activating, ExtensionFileLoader):  # type: ignore[misc]
    def __init__(self, fullname: str, path: str, tree: Tree) -> None:
        ExtensionFileLoader.__init__(self, fullname, path)
        self.tree = tree


class LazySourceLoader(_Activating, SourceFileLoader):  # type: ignore[misc]
    def __init__(self, fullname: str, path: str, tree: Tree) -> None:
        SourceFileLoader.__init__(self, fullname, path)
        self.tree = tree

    def path_stats(self, path: str) -> Any:
        self.tree.activate()
        return super().path_stats(path)


class LazySourcelessLoader(_Activating, SourcelessFileLoader):
    def __init__(self, fullname: str, path: str, tree: Tree) -> None:
        SourcelessFileLoader.__init__(self, fullname, path)
        self.tree = tree


class MemoryLoader:
    """Loads a pure-Python module from the code parts; its files need not exist on disk."""

    def __init__(self, fullname: str, path: str, tree: Tree, source: str | None, pyc: str | None,
                 is_pkg: bool) -> None:
        self.name, self.path, self.tree = fullname, path, tree
        self.source, self.pyc, self.is_pkg = source, pyc, is_pkg

    def __repr__(self) -> str:
        return f"<MemoryLoader {self.name!r} from {self.path!r}>"

    # -- importlib.abc.Loader ------------------------------------------------------------
    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        self.tree.activate()  # the tree holds the package's shared libraries and data files
        return None

    def exec_module(self, module: ModuleType) -> None:
        code = self.get_code(module.__name__)
        self.tree.enter()
        try:
            exec(code, module.__dict__)
        finally:
            self.tree.leave()

    # -- InspectLoader, ExecutionLoader, ResourceLoader ------------------------------------
    def is_package(self, fullname: str) -> bool:
        return self.is_pkg

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_code(self, fullname: str) -> CodeType:
        if self.pyc is not None:
            data = self.tree.files.read(self.pyc)
            if self._bytecode_fits(data):
                code = marshal.loads(memoryview(data)[16:])
                _imp._fix_co_filename(code, self.path)  # type: ignore[attr-defined]
                return code  # type: ignore[no-any-return]
        if self.source is None:
            raise ImportError(f"bad magic number in {self.path}", name=fullname, path=self.path)
        return compile(self.tree.files.read(self.source), self.path, "exec", dont_inherit=True)

    def _bytecode_fits(self, data: bytes) -> bool:
        """True for bytecode of this Python whose (timestamp-based) header matches the source size."""
        if len(data) < 16 or data[:4] != MAGIC_NUMBER:
            return False
        flags = int.from_bytes(data[4:8], "little")
        if flags == 0 and self.source is not None:  # timestamp-based: the size must agree
            return int.from_bytes(data[12:16], "little") == self.tree.files.sizes[self.source] & 0xFFFFFFFF
        return True

    def get_source(self, fullname: str) -> str | None:
        if self.source is None:
            return None
        return decode_source(self.tree.files.read(self.source))

    def get_data(self, path: str) -> bytes:
        rel = self.tree.rel(os.path.abspath(path))
        if rel is not None and rel.replace(os.sep, "/") in self.tree.files.code:
            return self.tree.files.read(rel.replace(os.sep, "/"))
        with open(path, "rb") as fh:
            return fh.read()

    def get_resource_reader(self, fullname: str) -> Any:
        """Resources are the package folder's files in the tree (data files are written there)."""
        self.tree.activate()
        from importlib.readers import FileReader

        return FileReader(self)  # type: ignore[arg-type]
