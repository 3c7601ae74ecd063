"""Settings read from ``LAMBDASLIM_*`` environment variables (an explicit argument always wins).

Kept free of heavy imports: ``lambdaslim.bootstrap`` reads it at cold start.
"""

from __future__ import annotations

import os

DEFAULT_ROOT = "/tmp/lambdaslim"
DEFAULT_LAYER_ROOTS = ("/opt",)


def extraction_root() -> str:
    """Where packages are extracted and caches and scratch folders live (``LAMBDASLIM_TMP``)."""
    return os.environ.get("LAMBDASLIM_TMP") or DEFAULT_ROOT


def size(name: str) -> int | None:
    """The size in the variable ``name`` (``512MB``, ``1GiB``, ``1000``), or None when unset."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    from .._size import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def tmp_limit() -> int | None:
    """The byte cap from ``LAMBDASLIM_TMP_LIMIT``, or None."""
    return size("LAMBDASLIM_TMP_LIMIT")


def layer_roots() -> list[str]:
    """Folders searched for packed layers: ``LAMBDASLIM_LAYER_ROOTS`` or /opt and the task root."""
    text = os.environ.get("LAMBDASLIM_LAYER_ROOTS")
    if text is not None:
        return [p for p in text.split(os.pathsep) if p]
    roots = list(DEFAULT_LAYER_ROOTS)
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    if task_root:
        roots.append(task_root)
    return roots


def flag(name: str, default: bool = False) -> bool:
    """A boolean environment variable: 1/true/yes/on are true."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


PYTHON_MODES = ("memory", "disk")


def python_mode() -> str:
    """``LAMBDASLIM_PYTHON``: ``memory`` (default: .py/.pyc served from the layer, only native
    code and data in /tmp; a code file is written when code lists or opens it by path) or
    ``disk`` (every file in the tree)."""
    mode = os.environ.get("LAMBDASLIM_PYTHON", "").strip().lower() or "memory"
    if mode not in PYTHON_MODES:
        raise ValueError(f"LAMBDASLIM_PYTHON must be 'memory' or 'disk', not {mode!r}")
    return mode
