"""The base of every error lambdaslim raises on purpose; each part has its own ``_errors.py``."""

from __future__ import annotations


class LambdaslimError(Exception):
    """Base class of every error lambdaslim raises on purpose."""
