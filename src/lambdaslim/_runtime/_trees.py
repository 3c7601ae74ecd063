"""Where each packed unit's tree is, and making it exist when one of its modules is loaded.

A mixin of :class:`~lambdaslim._runtime._finder.LayerFinder`: the loaders of
:mod:`._loader` and the path hook of :mod:`._pathhook` reach the finder through a
:class:`~lambdaslim._runtime._loader.Tree` built here. In memory mode a unit's tree is
``units/<key>.m`` (shared libraries, extension modules and data files only), in disk mode
``units/<key>`` (every file).
"""

from __future__ import annotations

import _thread
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from ._finder import Entry
    from ._loader import Tree

PACKED, EXTRACTED, RELEASED = "packed", "extracted", "released"
BROKEN, SHADOWED = "broken", "shadowed"  # set aside (see _discover): never extracted


class TreeHost:
    """The finder's trees: state shared with LayerFinder, which sets these attributes."""

    memory: bool
    cleanup_after_import: bool
    units_root: str
    _trees: dict[str, Tree]
    _by_key: dict[str, Entry]
    _lock: Any
    _local: Any

    def entries(self) -> list[Entry]:
        raise NotImplementedError

    def _activate(self, e: Entry, workers: int | None = None, pool: Any = None) -> bool:
        raise NotImplementedError

    def _release_entries(self, entries: list[Entry]) -> list[str]:
        raise NotImplementedError

    def _check(self, e: Entry) -> bool:
        raise NotImplementedError

    def _root_of(self, e: Entry) -> str:
        memory = self.memory and e.unit is not None
        return os.path.join(self.units_root, e.key + (".m" if memory else ""))

    def tree(self, e: Entry) -> Tree:
        """The loaders' view of packed unit ``e`` (its file table is parsed on first use)."""
        tree = self._trees.get(e.key)
        if tree is None:
            from ._loader import Tree
            from ._memory import UnitFiles

            assert e.index is not None and e.unit is not None
            tree = Tree(self._root_of(e), UnitFiles(e.index, e.unit), lambda: self.load_unit(e),
                        self._enter, self._leave, self.memory)
            self._trees[e.key] = tree
        return tree

    def tree_of(self, key: str) -> Tree | None:
        """The tree of the unit ``key`` (the path hook's question), None when unknown or set
        aside (a broken or shadowed unit answers for nothing)."""
        self.entries()
        e = self._by_key.get(key)
        if e is None or e.unit is None or e.state in (BROKEN, SHADOWED) or not self._check(e):
            return None
        return self.tree(e)

    def load_unit(self, e: Entry) -> None:
        """Make ``e``'s tree exist because one of its modules is being loaded."""
        if e.state == EXTRACTED and e.path is not None and e.path in sys.path:
            return
        if e.state in (BROKEN, SHADOWED):  # found before its layer was set aside
            raise ImportError(f"{e.name} {e.version} from {e.source} was set aside: {e.error}", name=e.name)
        local = self._local
        busy, local.busy = getattr(local, "busy", False), True
        try:
            with self._lock:
                fresh = self._activate(e)
        finally:
            local.busy = busy
        if fresh and self.cleanup_after_import:  # released when the outermost import ends
            pending = getattr(local, "pending", None)
            if pending is None:
                pending = local.pending = []
            pending.append(e)

    def _after_fork(self) -> None:
        """A forked child gets fresh locks: a thread of the parent may have held them."""
        self._lock, self._local = _thread.RLock(), _thread._local()

    def _enter(self) -> None:
        self._local.depth = getattr(self._local, "depth", 0) + 1

    def _leave(self) -> None:
        """LAMBDASLIM_CLEANUP=after-import: when the outermost import that extracted something
        finishes, the trees it extracted are deleted (loaded extension modules stay mapped)."""
        local = self._local
        local.depth -= 1
        if local.depth == 0:
            pending, local.pending = getattr(local, "pending", []), []
            if pending:
                with self._lock:
                    self._release_entries(pending)

    def _disk_bytes(self, e: Entry) -> int:
        """What ``e``'s tree takes in /tmp in this mode."""
        return e.unit.native_disk_bytes if self.memory and e.unit is not None else e.disk_bytes

