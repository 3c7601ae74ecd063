"""``--stub NAME``: replace a distribution by empty importable modules, keeping its metadata.

Some dependencies are declared but never used by a function (pandas under mlflow, for one).
Their files go; each of their top-level modules becomes a stub that imports fine. Every name
in it is a placeholder: ``isinstance(x, pandas.DataFrame)`` is False (scikit-learn probes
``sys.modules["pandas"]`` that way once anything imported pandas), and calling it, or reading
an attribute of it, raises :class:`~lambdaslim.StubbedDistributionError` (an ImportError).
``importlib.metadata`` still finds the distribution, so version checks and entry points of
other packages keep working.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from email.parser import HeaderParser

from . import _prune, _record
from ._errors import PackError

_TEMPLATE = '''"""Stub written by `lambdaslim pack --stub {dist}`: {dist} {version} is not in this layer."""

try:
    from lambdaslim._runtime._errors import StubbedDistributionError as _Error
except ImportError:  # pragma: no cover - lambdaslim not on sys.path

    class _Error(ImportError):  # type: ignore[no-redef]
        def __init__(self, distribution: str, module: str, attribute: str) -> None:
            super().__init__(f"{{module}}.{{attribute}}: {{distribution}} was replaced by an "
                             "empty stub when this layer was packed", name=module)

__version__ = {version!r}
{path_line}

class _Missing(type):
    """What any name of this module is: no object is an instance, using it raises."""

    def __call__(cls, *args: object, **kwargs: object) -> object:
        raise _Error({dist!r}, {module!r}, cls.__name__)

    def __getattr__(cls, name: str) -> object:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        raise _Error({dist!r}, {module!r}, cls.__name__ + "." + name)

    def __instancecheck__(cls, obj: object) -> bool:
        return False

    def __subclasscheck__(cls, sub: type) -> bool:
        return False

    def __repr__(cls) -> str:
        return "<name %s.%s of the stubbed distribution %s>" % ({module!r}, cls.__name__, {dist!r})


def __getattr__(name: str) -> object:
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)
    missing = _Missing(name, (), {{"__module__": __name__}})
    globals()[name] = missing
    return missing
'''


def normalize(name: str) -> str:
    """PEP 503 normalisation: ``Scikit_Learn`` -> ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class StubResult:
    distribution: str
    version: str
    modules: list[str]
    removed_files: int
    removed_bytes: int
    removed: list[str] = field(default_factory=list)


def find_dist_info(root: str, name: str) -> tuple[str, str, str]:
    """(dist-info folder, Name, Version) of the distribution called ``name`` in ``root``."""
    wanted = normalize(name)
    for d in _record.dist_infos(root):
        try:
            with open(os.path.join(root, d, "METADATA"), encoding="utf-8", errors="replace") as fh:
                headers = HeaderParser().parse(fh)
        except OSError:
            continue
        if normalize(str(headers.get("Name", ""))) == wanted:
            return d, str(headers["Name"]), str(headers.get("Version", ""))
    raise PackError(f"--stub {name}: no distribution of that name in the tree", root)


def stub(root: str, name: str) -> StubResult:
    """Replace distribution ``name`` in ``root`` by stubs of its top-level modules."""
    from .._runtime._names import import_names

    dist_info, dist, version = find_dist_info(root, name)
    own = [rel for rel in (_record.norm_entry(row[0]) for row in _record.read_record(root, dist_info))
           if rel is not None and not rel.startswith(dist_info + "/")]
    others: set[str] = set()
    for d in _record.dist_infos(root):
        if d != dist_info:
            others.update(r for r in (_record.norm_entry(row[0]) for row in _record.read_record(root, d)) if r)
    present = [rel for rel in own if rel not in others and os.path.isfile(os.path.join(root, rel))]
    modules = import_names(present)
    packages = {m for m in modules
                if any(rel.startswith(m.replace(".", "/") + "/") for rel in present)}
    removed_bytes = sum(os.path.getsize(os.path.join(root, rel)) for rel in present)
    _prune.remove_files(root, present)
    written: list[str] = []
    for module in modules:
        base = module.replace(".", "/")
        rel = f"{base}/__init__.py" if module in packages else f"{base}.py"
        full = os.path.join(root, rel)
        os.makedirs(os.path.dirname(full) or root, exist_ok=True)
        with open(full, "w", encoding="utf-8") as fh:
            fh.write(_TEMPLATE.format(
                dist=dist, version=version, module=module,
                path_line="__path__: list[str] = []" if module in packages else ""))
        written.append(rel)
    _record.sync_records(root, added={dist_info: written})
    return StubResult(dist, version, modules, len(present), removed_bytes, sorted(present))
