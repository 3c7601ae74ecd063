"""Memory trees: a code file goes to disk when code lists or opens it by path.

Memory mode serves ``.py``/``.pyc`` from the layer, but some code reads its own sources by
path: transformers lists ``transformers/models/`` and reads every ``.py`` there to build its
lazy import table. An audit hook, installed with the first memory tree, sees ``os.listdir``,
``os.scandir`` and ``open`` of a path inside a memory tree *before* they run and writes what
they would touch: a listed folder's code files (its subfolders' too: such code walks the
package), or the one code file opened. Each file is written once (when missing, under the
tree's lock, through ``staging/``, renamed into place), inside the storage budget, and added
to the tree's marker so that ``budget.usage()`` counts it. Every other audit event costs one
set lookup.
"""

from __future__ import annotations

import _thread
import itertools
import json
import os
import posixpath
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from ._loader import Tree
    from ._trees import TreeHost

_EVENTS = frozenset(("open", "os.listdir", "os.scandir"))
_hosts: dict[str, TreeHost] = {}  # units root + os.sep -> the finder whose trees live there
_listed: dict[str, set[str]] = {}  # tree root -> folders whose code is on disk, subfolders too
_local = _thread._local()
_seq = itertools.count()
_installed = False


def install(host: TreeHost, root: str) -> None:
    """Serve the memory tree ``root`` of ``host``, just made to exist (the hook itself is
    added once per process)."""
    global _installed
    _hosts[host.units_root + os.sep] = host
    _listed[root] = set()  # a tree (re)published: nothing of it known to be written yet
    if not _installed:
        _installed = True
        sys.addaudithook(_hook)


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event not in _EVENTS or not args:
        return
    raw = args[0]
    if isinstance(raw, str):
        path = raw
    elif isinstance(raw, (bytes, os.PathLike)):  # not None (the current folder) nor a descriptor
        try:
            path = os.fsdecode(os.fspath(raw))
        except TypeError:
            return
    else:
        return
    for prefix, host in _hosts.items():
        if path.startswith(prefix):
            break
    else:
        return
    if getattr(_local, "busy", False):
        return  # our own reads and writes below
    _local.busy = True
    try:
        _serve(host, event, path[len(prefix):])
    finally:
        _local.busy = False


def _serve(host: TreeHost, event: str, rest: str) -> None:
    """Write the code files that ``event`` on ``<units root>/<rest>`` would see."""
    from ._pathhook import MEMORY_SUFFIX

    top, _, rel = rest.partition(os.sep)
    if not top.endswith(MEMORY_SUFFIX):
        return
    tree = host._trees.get(top[: -len(MEMORY_SUFFIX)])
    if tree is None or not tree.memory:
        return
    rel = rel.replace(os.sep, "/").rstrip("/")
    if "//" in rel or "/./" in f"/{rel}/" or "/../" in f"/{rel}/":
        rel = posixpath.normpath(rel)
        if rel == ".":
            rel = ""
        elif rel.startswith("../"):
            return
    files = tree.files
    if event == "open":
        if rel in files.code and not os.path.lexists(os.path.join(tree.root, *rel.split("/"))):
            _write(host, tree, [rel])
        return
    listed = _listed.get(tree.root)
    if listed is None or not rel or not files.is_dir(rel):
        return  # the tree's root is a sys.path entry: importlib.metadata and pkgutil list it
    folder = rel
    while folder not in listed:
        if not folder:
            break
        folder = folder.rpartition("/")[0]
    else:
        return  # this folder, or one above it, was written already
    # The folder's code and its subfolders' (one write for a package walked top-down);
    # bytecode caches only when a __pycache__ itself is listed.
    prefix = f"{rel}/" if rel else ""
    wanted = [p for p in files.code if p.startswith(prefix) and "__pycache__/" not in p[len(prefix):]]
    todo = [p for p in wanted if not os.path.lexists(os.path.join(tree.root, *p.split("/")))]
    if todo:
        _write(host, tree, todo)
    listed.add(rel)


def _write(host: TreeHost, tree: Tree, rels: list[str]) -> None:
    """Write ``rels`` into the tree (those not there yet), counted in the budget and marker."""
    from ._budget import MARKER, owner, write_small
    from ._format import disk_bytes
    from ._store import read_marker

    budget = host.budget  # type: ignore[attr-defined]
    key = os.path.basename(tree.root)
    with budget.lock("unit-" + key):  # the tree's lock: it is not replaced or released meanwhile
        marker = read_marker(tree.root)
        if marker is None:
            return  # released, or being extracted again: the listing sees what is there
        todo = [p for p in rels if not os.path.lexists(os.path.join(tree.root, *p.split("/")))]
        need = disk_bytes([tree.files.sizes[p] for p in todo], 0)  # whole blocks, as the tree's
        if todo:
            with budget.reserve(f"{tree.files.unit.name} sources", need):
                for rel in todo:
                    dest = os.path.join(tree.root, *rel.split("/"))
                    staged = budget.path("staging", f"{key}.stage{owner()}.src{next(_seq)}")
                    data = tree.files.read(rel)
                    try:
                        with open(staged, "wb") as fh:
                            fh.write(data)
                        os.makedirs(os.path.dirname(dest), exist_ok=True)
                        os.replace(staged, dest)
                    except OSError as exc:
                        if os.path.lexists(staged):
                            os.unlink(staged)
                        if exc.filename:
                            raise
                        raise OSError(exc.errno, f"{exc.strerror} (writing {dest})", dest) from None
                marker["disk_bytes"] = int(marker.get("disk_bytes", 0)) + need  # type: ignore[call-overload]
                staged = budget.path("staging", f"{key}.stage{owner()}.marker{next(_seq)}")
                write_small(staged, json.dumps(marker))
                os.replace(staged, os.path.join(tree.root, MARKER))
