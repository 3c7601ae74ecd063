"""``importlib.metadata`` for packed distributions, before and after extraction.

Metadata is read from the layer's ``meta/`` copy of the dist-info (memory-mode trees hold
none). ``files(dist)[i].locate()`` gives a path that exists: the tree is extracted when a
file of the distribution is located, and a ``.py`` file served from memory is written into
the tree then (only that file).
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from importlib.metadata import PathDistribution

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable
    from typing import Any

    from ._loader import Tree


class PackedDistribution(PathDistribution):
    """A packed distribution whose files are located in its tree under the extraction root."""

    def __init__(self, meta: str, dist_info: str, tree: Callable[[], Tree]) -> None:
        super().__init__(pathlib.Path(meta))
        self._dist_info, self._tree = dist_info, tree

    def locate_file(self, path: Any) -> pathlib.Path:
        rel = pathlib.PurePosixPath(path).as_posix()
        if rel == self._dist_info or rel.startswith(self._dist_info + "/"):
            return pathlib.Path(os.path.dirname(str(self._path))) / rel
        tree = self._tree()
        tree.activate()
        target = os.path.join(tree.root, *rel.split("/"))
        if tree.memory and rel in tree.files.code and not os.path.exists(target):
            materialize(target, tree.files.read(rel))
        return pathlib.Path(target)


def materialize(target: str, data: bytes) -> None:
    """Write one file served from memory into its tree (atomically: racing processes agree)."""
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lambdaslim-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
