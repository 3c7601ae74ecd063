"""Finding what the layer roots hold: broken layers set aside, one copy of each distribution.

**Isolation.** A packed layer whose index cannot be read (bad JSON, wrong shape, a future
``format_version``, lies about sizes...) or a zip bundle that is not a readable zip is *set
aside*: one WARNING line on the ``lambdaslim.bootstrap`` logger, and the rest of the process
imports as if it were absent. The import names it would have provided are salvaged from its
bytes where possible, so that importing one of them raises a ``ModuleNotFoundError`` that
names the broken layer and why, instead of a bare "No module named".

**One copy of a distribution.** When several packed layers hold the same distribution (same
normalized name), exactly one is used and the others are never extracted:

1. the highest version wins (PEP 440 release numbers; a pre-release, dev or local suffix
   ranks below the same release without one): code that needs the newer one breaks with the
   older, and one environment never holds two;
2. same version: the layer found in the first root of ``LAMBDASLIM_LAYER_ROOTS`` wins;
3. same root: the layer whose id sorts first wins (ids are content hashes: stable across
   processes and independent of the order Lambda unzipped the layers in).

The others are reported as ``shadowed`` by ``status()``, ``lambdaslim inspect`` and
``lambdaslim verify``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from ._format import LayerIndex, Unit
    from ._zipbundle import ZipBundle

from ._errors import ArchiveError

LOGGER = "lambdaslim.bootstrap"


class Broken:
    """A layer folder or zip bundle that was set aside, and why."""

    def __init__(self, source: str, kind: str, reason: str, import_names: list[str]) -> None:
        self.source, self.kind, self.reason, self.import_names = source, kind, reason, import_names


class Found:
    """A packed unit or a zip bundle that may be used, and whether another copy shadows it."""

    def __init__(self, source: str, root_no: int, index: LayerIndex | None = None,
                 unit: Unit | None = None, bundle: ZipBundle | None = None) -> None:
        self.source, self.root_no = source, root_no
        self.index, self.unit, self.bundle = index, unit, bundle
        self.shadowed_by: Found | None = None
        self.broken: str | None = None  # set when its unit key collides with another layer's


def normalize(name: str) -> str:
    out = []
    prev_sep = False
    for ch in name.lower():
        if ch in "-_.":
            if not prev_sep:
                out.append("-")
            prev_sep = True
        else:
            out.append(ch)
            prev_sep = False
    return "".join(out)


def version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    """Orders versions by their release numbers, a final release above its pre-releases."""
    text = version.strip().lower().lstrip("v")
    if "!" in text:  # epochs are rare; they rank by the release after them
        text = text.split("!", 1)[1]
    numbers: list[int] = []
    i = 0
    while i < len(text):
        j = i
        while j < len(text) and text[j].isdigit():
            j += 1
        if j == i or j - i > 18:
            break
        numbers.append(int(text[i:j]))
        i = j
        if i < len(text) and text[i] == "." and i + 1 < len(text) and text[i + 1].isdigit():
            i += 1
        else:
            break
    rest = text[i:]
    final = 1 if not rest or rest.startswith((".post", "post", "-")) else 0
    while numbers and numbers[-1] == 0:
        numbers.pop()  # 1.0 == 1
    return tuple(numbers), final, rest


def scan(roots: list[str]) -> tuple[list[Found], list[Broken]]:
    """Every packed unit and zip bundle in ``roots`` (broken ones set aside), in root order."""
    from ._format import INDEX_NAME, LAYER_DIR, read_index

    found: list[Found] = []
    broken: list[Broken] = []
    seen_layers: set[str] = set()
    for root_no, root in enumerate(roots):
        layer_dir = os.path.join(root, LAYER_DIR)
        for layer_id in _listdir(layer_dir):
            folder = os.path.join(layer_dir, layer_id)
            if layer_id in seen_layers or not os.path.lexists(os.path.join(folder, INDEX_NAME)):
                continue
            seen_layers.add(layer_id)
            try:
                index = read_index(folder, lazy=True)
            except ArchiveError as exc:
                broken.append(_set_aside(folder, "layer", str(exc), _salvage(os.path.join(folder, INDEX_NAME))))
                continue
            found.extend(Found(folder, root_no, index=index, unit=u) for u in index.units)
        for name in _listdir(root):
            full = os.path.join(root, name)
            if not name.endswith(".zip") or not os.path.isfile(full):
                continue
            from ._zipbundle import ZipBundle  # zipfile and email cost ~50 ms: only for a bundle

            try:
                bundle = ZipBundle(full)
            except ArchiveError as exc:
                broken.append(_set_aside(full, "zip", str(exc), []))
                continue
            if bundle.import_names:  # a data zip with no Python in it is not a bundle
                found.append(Found(full, root_no, bundle=bundle))
    one_copy_each(found)
    _unique_keys(found, broken)
    return found, broken


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _set_aside(source: str, kind: str, reason: str, names: list[str]) -> Broken:
    import logging

    logging.getLogger(LOGGER).warning(
        "lambdaslim: %s %s is set aside and will not be imported from: %s", kind, source, reason)
    return Broken(source, kind, reason, names)


def _salvage(index_path: str, limit: int = 4 << 20) -> list[str]:
    """Import names listed in an index that failed validation (best effort, bounded)."""
    import re

    try:
        with open(index_path, "rb") as fh:
            data = fh.read(limit)
    except OSError:
        return []
    names: set[str] = set()
    for block in re.findall(rb'"import_names"\s*:\s*\[([^\]]{0,20000})\]', data):
        for raw in re.findall(rb'"([A-Za-z_][A-Za-z0-9_]{0,100}(?:\.[A-Za-z_][A-Za-z0-9_]{0,100})*)"', block):
            names.add(raw.decode("ascii"))
    return sorted(names)


def one_copy_each(found: list[Found]) -> None:
    """Apply the rule in this module's docstring: mark every copy but one ``shadowed_by``."""
    by_name: dict[str, list[Found]] = {}
    for f in found:
        if f.unit is not None and f.unit.kind == "dist":
            by_name.setdefault(normalize(f.unit.name), []).append(f)
    for copies in by_name.values():
        if len(copies) < 2:
            continue
        layer_id = _layer_id
        ordered = sorted(copies, key=lambda f: (f.root_no, layer_id(f)))
        winner = ordered[0]
        for f in ordered[1:]:
            assert f.unit is not None and winner.unit is not None
            if version_key(f.unit.version) > version_key(winner.unit.version):
                winner = f
        for f in copies:
            if f is not winner:
                f.shadowed_by = winner


def _unique_keys(found: list[Found], broken: list[Broken]) -> None:
    """Two different trees may never share ``units/<key>``: the later one is set aside."""
    owners: dict[str, Found] = {}
    for f in found:
        if f.shadowed_by is not None or f.unit is None:
            continue
        other = owners.setdefault(f.unit.key, f)
        if other is not f and other.unit is not None and other.unit.sha256 != f.unit.sha256:
            f.broken = f"unit key {f.unit.key!r} is also used, for other content, by {other.source}"
            broken.append(_set_aside(f.source, "unit", f.broken, list(f.unit.import_names)))


def _layer_id(f: Found) -> str:
    return os.path.basename(f.source)


def status_row(e: Any, finder: Any) -> tuple[str, dict[str, Any]]:
    """One entry of ``status()``: a finder Entry described (its file table validated).

    ``disk_bytes`` is what the tree takes in /tmp in the finder's mode (memory mode: native
    code and data only), ``memory_bytes`` the code held decompressed right now, ``code_bytes``
    all its .py/.pyc (served from memory in memory mode)."""
    state, error = e.state, e.error
    memory = finder.memory and e.unit is not None
    try:
        unpacked = e.unpacked_bytes
        disk = finder._disk_bytes(e)
        code = e.unit.code_bytes if e.unit is not None else 0
    except ArchiveError as exc:  # a file table that fails validation
        state, error, disk, unpacked, code = "broken", str(exc), 0, 0, 0
    key = e.name if state not in ("broken", "shadowed") else f"{e.name}@{e.source}"
    return key, {
        "state": state,
        "version": e.version,
        "kind": e.kind,
        "key": e.key,
        "import_names": list(e.import_names),
        "path": e.path if e.state == "extracted" else None,
        "source": e.source,
        "unpacked_bytes": unpacked,
        "mode": "memory" if memory else "disk",
        "disk_bytes": disk,
        "memory_bytes": finder._trees[e.key].files.held() if e.key in finder._trees and e.unit is not None
        and finder._by_key.get(e.key) is e else 0,
        "code_bytes": code,
        "seconds": round(e.seconds, 4),
        "extractions": e.extractions,
        "error": error,
        "shadowed_by": e.shadowed_by,
    }


def entries(roots: list[str], make: Any) -> list[Any]:
    """The finder's entries (``make`` is its Entry class): usable, shadowed and broken ones."""
    found, broken = scan(roots)
    out: list[Any] = []
    for f in found:
        src, unit, bundle = f.source, f.unit, f.bundle
        if unit is not None:
            meta = [os.path.join(src, "meta", unit.dist_info)] if unit.dist_info else []
            e = make(key=unit.key, name=unit.name, version=unit.version, kind=unit.kind, sha256=unit.sha256,
                     import_names=unit.import_names, disk_bytes=0, unpacked_bytes=0, source=src,
                     index=f.index, unit=unit, meta=meta)
        else:
            assert bundle is not None
            e = make(key=bundle.key, name=bundle.name, version=bundle.version, kind="zip",
                     sha256=bundle.sha256, import_names=bundle.import_names, disk_bytes=bundle.disk_bytes,
                     unpacked_bytes=bundle.unpacked_bytes, source=src, bundle=bundle,
                     meta=[f"{src}!{d}" for d in bundle.dist_infos])
        if f.shadowed_by is not None or f.broken is not None:  # set aside: never extracted
            e.state, e.meta = ("shadowed" if f.broken is None else "broken"), []
            e.shadowed_by, e.error = (f.shadowed_by.source if f.shadowed_by else None), f.broken
        out.append(e)
    for b in broken:
        if b.kind != "unit":  # a broken unit is an entry already
            e = make(key=os.path.basename(b.source), name=os.path.basename(b.source), version="", kind=b.kind,
                     sha256="", import_names=b.import_names, disk_bytes=0, unpacked_bytes=0, source=b.source)
            e.state, e.error = "broken", b.reason
            out.append(e)
    return out


def set_aside_later(finder: Any, source: str, reason: str) -> None:
    """A file table found bad on first use: its whole layer is set aside from now on."""
    _set_aside(source, "layer", reason, [])
    for e in finder.entries():
        if e.source == source and e.state in ("packed", "released"):
            e.state, e.error, e.meta = "broken", reason, []
            for n in e.import_names:
                providers = finder._names.get(n, [])
                if e in providers:
                    providers.remove(e)
                if not providers:
                    finder._names.pop(n, None)
                    finder._broken_names.setdefault(n, e)
