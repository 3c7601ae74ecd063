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

PACKED, EXTRACTED, RELEASED = "packed", "extracted", "released"
BROKEN, SHADOWED = "broken", "shadowed"  # set aside (see _discover): never extracted

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

    def files(self) -> list[tuple[str, int]]:
        """(path, size) of every file the published tree must hold."""
        if self.unit is not None:
            return [(f.path, f.size) for f in self.unit.files]
        assert self.bundle is not None
        return self.bundle.sizes

    def extract_into(self, dest: str, workers: int, pool: Executor | None = None) -> None:
        if self.bundle is not None:
            self.bundle.extract(dest)
        else:
            from ._extract import extract_unit

            assert self.index is not None and self.unit is not None
            extract_unit(self.index, self.unit, dest, workers=workers, pool=pool)


class _ReleaseAfterImport:
    """Loader wrapper for LAMBDASLIM_CLEANUP=after-import: when the outermost import that
    extracted something finishes, the trees it extracted are deleted (loaded extension
    modules stay mapped; a later import that needs a file extracts it again)."""

    def __init__(self, loader: Any, finder: LayerFinder) -> None:
        self._loader = loader
        self._finder = finder

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        result: ModuleType | None = self._loader.create_module(spec)
        return result

    def exec_module(self, module: ModuleType) -> None:
        local = self._finder._local
        local.depth = getattr(local, "depth", 0) + 1
        try:
            self._loader.exec_module(module)
        finally:
            local.depth -= 1
            if local.depth == 0:
                pending, local.pending = getattr(local, "pending", []), []
                self._finder._release_entries(pending)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class LayerFinder:
    """Meta path finder over the packed layers and zip bundles in the layer roots."""

    def __init__(self, roots: list[str] | None = None, tmp_root: str | None = None) -> None:
        from . import _config

        self.roots = roots if roots is not None else _config.layer_roots()
        self.tmp_root = tmp_root or _config.extraction_root()
        self.cleanup_after_import = os.environ.get("LAMBDASLIM_CLEANUP", "").strip().lower() in (
            "after-import", "after_import", "1", "true")
        self.created = time.monotonic()
        self._entries: list[Entry] | None = None
        self._names: dict[str, list[Entry]] = {}
        self._broken_names: dict[str, Entry] = {}  # names only a broken layer would provide
        self._namespaces: set[str] = set()
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
                        for n in e.import_names:
                            self._names.setdefault(n, []).append(e)
                            parts = n.split(".")
                            for i in range(1, len(parts)):
                                self._namespaces.add(".".join(parts[:i]))
                    for e in self._entries:
                        if e.state == BROKEN:
                            for n in e.import_names:
                                if n not in self._names:
                                    self._broken_names.setdefault(n, e)
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
            providers = self._names.get(fullname)
        if providers:
            fresh = [e for e in providers if self._activate(e)]
            spec = PathFinder.find_spec(fullname, path)
            if spec is not None and fresh and self.cleanup_after_import and spec.loader is not None:
                pending = getattr(self._local, "pending", None)
                if pending is None:
                    pending = self._local.pending = []
                pending.extend(fresh)
                if getattr(self._local, "depth", 0) == 0:
                    spec.loader = _ReleaseAfterImport(spec.loader, self)  # type: ignore[assignment]
            return spec
        if fullname in self._namespaces:
            # A namespace package none of whose portions is on disk yet: an empty one whose
            # __path__ grows as portions are extracted (see _extend_namespaces).
            spec = ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = []
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

            path, seconds, extracted_now = publish(
                self.budget, key=e.key, sha256=e.sha256, what=f"{e.name} {e.version}",
                disk_bytes=e.disk_bytes, files=e.files,
                extract=lambda dest: e.extract_into(dest, _threads(workers), pool),
                info={"name": e.name, "version": e.version, "source": e.source})
            if extracted_now:
                e.seconds += seconds
                e.extractions += 1
                import logging

                logging.getLogger("lambdaslim.bootstrap").debug(
                    "extracted %s %s (%d bytes) from %s into %s in %.3f s",
                    e.name, e.version, e.unpacked_bytes, e.source, path, seconds)
            e.path, e.state = path, EXTRACTED
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
        """Distributions of packed units not on sys.path yet (extracted ones are found there)."""
        if context is not None and "path" in vars(context):
            return  # the caller asked about specific folders, not about sys.path
        import pathlib
        import zipfile
        from importlib.metadata import PathDistribution

        name = getattr(context, "name", None)
        from ._discover import normalize as _normalize

        wanted = _normalize(name) if name else None
        for e in self.entries():
            if e.state == EXTRACTED and e.path in sys.path:
                continue
            for meta in e.meta:
                if "!" in meta:
                    zpath, _, inner = meta.partition("!")
                    dist_name = inner.split("-")[0]
                    location: Any = zipfile.Path(zpath, inner + "/")
                else:
                    dist_name = e.name
                    location = pathlib.Path(meta)
                if wanted is None or _normalize(dist_name) == wanted:
                    yield PathDistribution(location)

    # -- public operations ---------------------------------------------------------------
    def status(self) -> dict[str, dict[str, Any]]:
        """Per distribution (keyed by name; a shadowed or broken one by ``name@source``)."""
        from ._discover import status_row

        return dict(status_row(e) for e in self.entries())

    def figures(self) -> tuple[int, float]:
        """(trees extracted, seconds spent extracting): cheap, for the per-invocation record."""
        entries = self._entries or []
        return sum(1 for e in entries if e.state == EXTRACTED), sum(e.seconds for e in entries)

    def extract_all(self, workers: int | None = None) -> None:
        """Extract every entry now, largest first, in parallel across entries and parts."""
        import concurrent.futures

        ncpu = _threads(workers)
        todo = sorted((e for e in self.entries() if e.state not in (BROKEN, SHADOWED) and self._check(e)),
                      key=lambda e: -e.disk_bytes)
        with self._lock:
            self._local.busy = True
            try:
                # Units run side by side; their parts share one pool of ``ncpu`` threads, which
                # bounds the decompression streams (and their memory) whatever the layer holds.
                with concurrent.futures.ThreadPoolExecutor(ncpu, "lambdaslim-part") as parts, \
                        concurrent.futures.ThreadPoolExecutor(ncpu, "lambdaslim-unit") as units:
                    for fut in [units.submit(self._activate, e, ncpu, parts) for e in todo]:
                        fut.result()
            finally:
                self._local.busy = False

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
                unpublish(self.budget, e.key)
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
    return finder
