"""``verify`` loads every entry point of every packed distribution and blames pruning steps.

The parent reads each distribution's ``entry_points.txt`` from the layer's ``meta/`` folders
(distributions made absent for having no use on Lambda have none); the child interpreter loads
each with ``importlib.metadata.EntryPoint.load()`` after the imports, under the same /tmp
limit. A failure that names a missing module (``ImportError.name``) or file
(``OSError.filename``) is matched against the ``LAMBDASLIM_REMOVED`` lists the build wrote,
so the report says which step removed it and how to keep it.
"""

from __future__ import annotations

import glob
import os

from . import _provenance
from ._needs import EntryPoint, entry_points

# Appended to verify's child program: loads cfg["entry_points"] ([group, name, value]) in turn.
CHILD = r'''
from importlib.metadata import EntryPoint as _EntryPoint
for group, name, value in cfg.get("entry_points") or []:
    step("entry point %s = %s (%s)" % (name, value, group),
         lambda ep=_EntryPoint(name, value, group): ep.load())
'''


def layer_entry_points(opt: str) -> list[EntryPoint]:
    """Every entry point of every distribution packed in the layers unzipped in ``opt``."""
    out: list[EntryPoint] = []
    for meta in sorted(glob.glob(os.path.join(opt, "lambdaslim", "*", "meta"))):
        out += entry_points(meta)
    return out


def child_config(eps: list[EntryPoint]) -> list[list[str]]:
    return [[ep.group, ep.name, ep.value] for ep in eps]


def explain(opt: str, missing_module: str | None, missing_file: str | None) -> str | None:
    """Which build step removed what a failure needed, with the ``--keep`` that brings it back."""
    removed: list[tuple[str, str]] = []
    for meta in glob.glob(os.path.join(opt, "lambdaslim", "*", "meta")):
        removed += _provenance.read(meta)
    found = _provenance.blame(removed, module=missing_module, filename=missing_file)
    if found is None:
        return None
    step, path = found
    if step == "no-gpu":
        return f"removed by the no-gpu step ({path}): CUDA code cannot run on Lambda; --keep-gpu keeps it"
    return f"removed by the {step} step ({path}); repack with --keep {path.rstrip('/')}"
