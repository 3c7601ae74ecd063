"""The import hook: the first import of a name a packed distribution provides extracts it.

:class:`LayerFinder` sits at the *end* of ``sys.meta_path``, so it is asked only about names
the normal machinery could not find: everything already on disk costs it nothing. On such a
miss it reads the layer indexes (once), extracts the distribution that provides the name (and
only it) through :mod:`lambdaslim._runtime._store`, appends its tree to ``sys.path`` and lets the normal
path finder load it. It also answers ``importlib.metadata`` for distributions not yet extracted.

Kept cheap to import: heavier modules are imported on the first miss.
"""

from __future__ import annotations

import os
import sys
import _thread  # not threading: that costs ~5 ms more at cold start
import time
from importlib.machinery import ModuleSpec, PathFinder

from ._trees import (BROKEN as BROKEN, EXTRACTED as EXTRACTED, PACKED as PACKED, RELEASED as RELEASED,
                     SHADOWED as SHADOWED, TreeHost)

TYPE_CHECKING = False  # typing itself costs ~10 ms at cold start; mypy reads the block below
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable, Iterator
    from concurrent.futures import Executor
    from importlib.metadata import Distribution
    from types import ModuleType
    from typing import Any

    from ._budget import Budget
    from ._format import LayerIndex, Unit
    from ._zipbundle import ZipBundle


# Each decompressing thread holds about 12 MB (an 8 MiB zstd window and buffers): four keep a
# full extraction under 64 MB of extra memory on a 6-vCPU function too.
MAX_THREADS = 4


def _threads(requested: int | None) -> int:
    return requested or min(MAX_THREADS, os.cpu_count() or 1)


class Entry:
    """One extractable thing: a unit of a packed layer, or a whole zip bundle."""

    def __init__(self, *, key: str, name: str, version: str, kind: str, sha256: str,
                 import_names: list[str], disk_bytes: int, unpacked_bytes: int, source: str,
                 index: LayerIndex | None = None, unit: Unit | None = None,
                 bundle: ZipBundle | None = None, meta: list[str] | None = None) -> None:
        self.key, self.name, self.version, self.kind = key, name, version, kind
        self.sha256 = sha256
        self.import_names = import_names
        self._disk_bytes, self._unpacked_bytes = disk_bytes, unpacked_bytes
        self.source = source  # the layer folder or zip file it comes from
        self.index, self.unit, self.bundle = index, unit, bundle
        self.meta = meta or []  # dist-info folders readable before extraction
        self.state = PACKED
        self.path: str | None = None
        self.seconds = 0.0
        self.extractions = 0
        self.error: str | None = None  # why a BROKEN entry was set aside
        self.shadowed_by: str | None = None  # the source of the copy used instead

    @property
    def disk_bytes(self) -> int:
        """From the validated file table (validating it on first use), never as declared."""
        return self.unit.disk_bytes if self.unit is not None else self._disk_bytes

    @property
    def unpacked_bytes(self) -> int:
        return self.unit.unpacked_bytes if self.unit is not None else self._unpacked_bytes

    def files(self, memory: bool = False) -> list[tuple[str, int]]:
        """(path, size) of every file the published tree must hold (memory mode: disk parts')."""
        if self.unit is not None:
            return [(f.path, f.size) for f in (self.unit.disk_files() if memory else self.unit.files)]
        assert self.bundle is not None
        return self.bundle.sizes

    def extract_into(self, dest: str, workers: int, pool: Executor | None = None,
                     memory: bool = False) -> None:
        if self.bundle is not None:
            self.bundle.extract(dest)
        else:
            from ._extract import extract_unit
            from ._format import DISK

            assert self.index is not None and self.unit is not None
            extract_unit(self.index, self.unit, dest, workers=workers, pool=pool,
                         kinds=frozenset([DISK]) if memory else None)


class LayerFinder(TreeHost):
    """Meta path finder over the packed layers and zip bundles in the layer roots."""

    def __init__(self, roots: list[str] | None = None, tmp_root: str | None = None) -> None:
        from . import _config

        self.roots = roots if roots is not None else _config.layer_roots()
        self.tmp_root = tmp_root or _config.extraction_root()
        self.units_root = os.path.join(os.path.abspath(self.tmp_root), "units")
        self.memory = _config.python_mode() == "memory"
        self.cleanup_after_import = os.environ.get("LAMBDASLIM_CLEANUP", "").strip().lower() in (
            "after-import", "after_import", "1", "true")
        self.created = time.monotonic()
        self._entries: list[Entry] | None = None
        self._names: dict[str, list[Entry]] = {}
        self._namespaces: dict[str, list[Entry]] = {}  # namespace package -> units with portions
        self._broken_names: dict[str, Entry] = {}  # names only a broken layer would provide
        self._by_key: dict[str, Entry] = {}
        self._trees = {}
        self._lock = _thread.RLock()
        self._local = _thread._local()
        self._budget: Budget | None = None

    # -- discovery ---------------------------------------------------------------------
    @property
    def budget(self) -> Budget:
        if self._budget is None:
            from ._budget import get_budget

            self._budget = get_budget(self.tmp_root)
        return self._budget

    def entries(self) -> list[Entry]:
        """Every packed unit and zip bundle found in the layer roots (read once)."""
        if self._entries is None:
            with self._lock:
                if self._entries is None:
                    self._entries = self._discover()
                    for e in self._entries:
                        if e.state in (BROKEN, SHADOWED):
                            continue
                        self._by_key.setdefault(e.key, e)
                        for n in e.import_names:
                            self._names.setdefault(n, []).append(e)
                            parts = n.split(".")
                            for i in range(1, len(parts)):
                                users = self._namespaces.setdefault(".".join(parts[:i]), [])
                                if e not in users:
                                    users.append(e)
                    for e in self._entries:
                        if e.state == BROKEN:
                            for n in e.import_names:
                                if n not in self._names:
                                    self._broken_names.setdefault(n, e)
                    root = os.path.dirname(self.units_root)
                    if os.path.isdir(os.path.join(root, "staging")) or os.path.isdir(os.path.join(root, "reserve")):
                        # _store and shutil cost ~10 ms: only when there may be something to sweep
                        from ._store import sweep_staging

                        sweep_staging(self.budget)  # leftovers of processes killed mid-extraction
        return self._entries

    def _discover(self) -> list[Entry]:
        from ._discover import entries

        return entries(self.roots, Entry)

    def _check(self, e: Entry) -> bool:
        """Validate ``e``'s file table (read lazily): a bad one sets its whole layer aside."""
        from ._errors import ArchiveError

        try:
            return e.disk_bytes >= 0
        except ArchiveError as exc:
            from ._discover import set_aside_later

            set_aside_later(self, e.source, str(exc))
            return False

    # -- the import protocol -----------------------------------------------------------
    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        local = self._local
        if getattr(local, "busy", False):
            return None  # an import made while this thread extracts: not ours
        local.busy = True
        try:
            self.entries()
            # Decide without the lock whether the name is ours at all: threads that extract
            # for us may import things too, and must never wait on that lock.
            if not self._claims(fullname):
                return None
            with self._lock:
                return self._find_spec(fullname, path)
        finally:
            local.busy = False

    def _claims(self, fullname: str) -> bool:
        return (fullname in self._names or fullname in self._namespaces or fullname in self._broken_names
                or self._released_owner(fullname) is not None)

    def _released_owner(self, fullname: str) -> Entry | None:
        """The released entry providing a package above ``fullname``, if any."""
        owner = fullname
        while "." in owner:
            owner = owner.rpartition(".")[0]
            for e in self._names.get(owner, ()):
                if e.state == RELEASED:
                    return e
        return None

    def _find_spec(self, fullname: str, path: Any) -> ModuleSpec | None:
        providers = self._names.get(fullname)
        if providers and not all([self._check(e) for e in providers]):
            providers = self._names.get(fullname)  # those left once a bad layer is set aside
        portions: list[str] = []
        for e in list(providers or ()):
            if e.unit is None:
                self._activate(e)  # a zip bundle: extracted now
                return PathFinder.find_spec(fullname, path)
            from ._loader import spec_for

            spec = spec_for(self.tree(e), fullname, fullname.replace(".", "/"))  # extracted when loaded
            if spec is None or spec.loader is not None:
                return spec
            portions.extend(spec.submodule_search_locations or ())
        users = [e for e in self._namespaces.get(fullname, ()) if e.state not in (BROKEN, SHADOWED)]
        if users or portions:
            # A namespace package (PEP 420) with portions in packed units: its __path__ lists
            # them, extracted or not (their modules are found from the index).
            spec = ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = portions + [
                os.path.join(self._root_of(e), *fullname.split(".")) for e in users]
            return spec
        broken = self._broken_names.get(fullname)
        if broken is not None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: the {broken.kind} {broken.source} that provides it "
                f"was set aside because it cannot be used: {broken.error}", name=fullname)
        # A submodule of a distribution whose tree was released: extract it again.
        released = self._released_owner(fullname)
        if released is None:
            return None
        self._activate(released)
        import importlib

        importlib.invalidate_caches()
        return PathFinder.find_spec(fullname, path)

    def _activate(self, e: Entry, workers: int | None = None, pool: Executor | None = None) -> bool:
        """Make ``e``'s tree exist and be on sys.path; True when it was extracted just now."""
        extracted_now = False
        if e.state in (BROKEN, SHADOWED):
            return False
        if e.state != EXTRACTED or e.path is None or not os.path.isdir(e.path):
            from ._store import publish

            memory = self.memory and e.unit is not None  # memory mode: only disk parts
            path, seconds, extracted_now = publish(
                self.budget, key=os.path.basename(self._root_of(e)), sha256=e.sha256,
                what=f"{e.name} {e.version}", disk_bytes=self._disk_bytes(e), files=lambda: e.files(memory),
                extract=lambda dest: e.extract_into(dest, _threads(workers), pool, memory),
                info={"name": e.name, "version": e.version, "source": e.source})
            if extracted_now:
                e.seconds += seconds
                e.extractions += 1
                import logging

                logging.getLogger("lambdaslim.bootstrap").debug(
                    "extracted %s %s (%d bytes) from %s into %s in %.3f s",
                    e.name, e.version, e.unpacked_bytes, e.source, path, seconds)
            e.path, e.state = path, EXTRACTED
            if memory:  # code that lists or opens its own sources finds them (see _sources)
                from . import _sources

                _sources.install(self, path)
        if e.path not in sys.path:
            sys.path.append(e.path)
        self._extend_namespaces(e)
        return extracted_now

    def _extend_namespaces(self, e: Entry) -> None:
        """Add ``e``'s portions to namespace packages created before it was extracted."""
        assert e.path is not None
        for name in e.import_names:
            parts = name.split(".")
            for i in range(1, len(parts)):
                module = sys.modules.get(".".join(parts[:i]))
                locations = getattr(module, "__path__", None)
                if isinstance(locations, list):
                    portion = os.path.join(e.path, *parts[:i])
                    if os.path.isdir(portion) and portion not in locations:
                        locations.append(portion)

    def invalidate_caches(self) -> None:
        """Part of the finder protocol; our state follows the file system already."""

    # -- importlib.metadata ------------------------------------------------------------
    def find_distributions(self, context: Any = None) -> Iterator[Distribution]:
        """Distributions of packed units whose tree holds no dist-info on sys.path: not
        extracted yet, or extracted in memory mode (read from the layer's meta/ copy)."""
        if context is not None and "path" in vars(context):
            return  # the caller asked about specific folders, not about sys.path
        from ._discover import normalize as _normalize

        name = getattr(context, "name", None)
        wanted = _normalize(name) if name else None
        for e in self.entries():
            if e.state == EXTRACTED and e.path in sys.path and not (self.memory and e.unit is not None):
                continue
            for meta in e.meta:
                if "!" in meta:
                    import zipfile
                    from importlib.metadata import PathDistribution

                    zpath, _, inner = meta.partition("!")
                    if wanted is None or _normalize(inner.split("-")[0]) == wanted:
                        yield PathDistribution(zipfile.Path(zpath, inner + "/"))
                elif wanted is None or _normalize(e.name) == wanted:
                    from ._metadata import PackedDistribution

                    assert e.unit is not None and e.unit.dist_info is not None
                    yield PackedDistribution(meta, e.unit.dist_info, lambda e=e: self.tree(e))  # type: ignore[misc]

    # -- public operations ---------------------------------------------------------------
    def status(self) -> dict[str, dict[str, Any]]:
        """Per distribution (keyed by name; a shadowed or broken one by ``name@source``)."""
        from ._discover import status_row

        return dict(status_row(e, self) for e in self.entries())

    def figures(self) -> tuple[int, float]:
        """(trees extracted, seconds spent extracting): cheap, for the per-invocation record."""
        entries = self._entries or []
        return sum(1 for e in entries if e.state == EXTRACTED), sum(e.seconds for e in entries)

    def extract_all(self, workers: int | None = None) -> None:
        """Extract every entry now, largest first, in parallel across entries and parts."""
        import concurrent.futures

        ncpu = _threads(workers)
        # Largest first by the packed bytes the index declares (a checked header field), not
        # by disk bytes: those need every file table validated before anything starts. The unit
        # threads validate each table (_check) right before extracting it, so the parts of the
        # first units decompress while the others are checked; a table found bad sets its layer
        # aside then, as a lazy import would (units of it extracted already stay).
        todo = sorted((e for e in self.entries() if e.state not in (BROKEN, SHADOWED)),
                      key=lambda e: -(e.unit.packed_bytes if e.unit is not None else e.disk_bytes))
        with self._lock:
            self._local.busy = True
            try:
                # Units run side by side; their parts share one pool of ``ncpu`` threads, which
                # bounds the decompression streams (and their memory) whatever the layer holds.
                with concurrent.futures.ThreadPoolExecutor(ncpu, "lambdaslim-part") as parts, \
                        concurrent.futures.ThreadPoolExecutor(ncpu, "lambdaslim-unit") as units:
                    for fut in [units.submit(self._check_and_activate, e, ncpu, parts) for e in todo]:
                        fut.result()
            finally:
                self._local.busy = False

    def _check_and_activate(self, e: Entry, workers: int, pool: Executor) -> bool:
        return e.state not in (BROKEN, SHADOWED) and self._check(e) and self._activate(e, workers, pool)

    def _select(self, names: Iterable[str] | None) -> list[Entry]:
        entries = self.entries()
        if names is None:
            return [e for e in entries if e.state == EXTRACTED]
        from ._discover import normalize as _normalize

        wanted = {_normalize(n) for n in ([names] if isinstance(names, str) else names)}
        return [e for e in entries
                if _normalize(e.name) in wanted or any(_normalize(i) in wanted for i in e.import_names)]

    def release(self, names: Iterable[str] | None = None) -> list[str]:
        """Delete extracted trees (all, or those of the given distribution or import names)."""
        with self._lock:
            return self._release_entries(self._select(names))

    def _release_entries(self, entries: list[Entry]) -> list[str]:
        from ._store import unpublish

        released = []
        for e in entries:
            if e.state == EXTRACTED:
                unpublish(self.budget, os.path.basename(self._root_of(e)))
                e.state = RELEASED
                released.append(e.name)
        return released


def install() -> LayerFinder:
    """Append the process's one LayerFinder to sys.meta_path (idempotent)."""
    for existing in sys.meta_path:
        if type(existing).__name__ == "LayerFinder" and hasattr(existing, "extract_all"):
            return existing  # type: ignore[return-value]
    finder = LayerFinder()
    sys.meta_path.append(finder)
    from ._pathhook import make_hook

    sys.path_hooks.insert(0, make_hook(finder.units_root, finder.tree_of))
    for path in [p for p in sys.path_importer_cache if isinstance(p, str) and p.startswith(finder.units_root)]:
        del sys.path_importer_cache[path]  # trees seen before the hook must be asked again
    from ._children import export

    export()
    os.register_at_fork(after_in_child=finder._after_fork)
    return finder
