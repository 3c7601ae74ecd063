"""Child Python processes import packed distributions as the parent does.

``import lambdaslim.bootstrap`` puts the folder :data:`CHILD_DIR` first on ``PYTHONPATH``.
It holds only a ``sitecustomize`` module, which Python's ``site`` runs at the start of every
child interpreter (``subprocess`` with ``sys.executable``, multiprocessing's spawn and
forkserver, joblib's loky workers): it imports ``lambdaslim.bootstrap`` (lazy, sharing the
extraction root through the inherited environment), then runs the ``sitecustomize`` the
child would have run otherwise. ``LAMBDASLIM_CHILDREN=0`` turns this off. Interpreters
started with ``-S``, ``-E`` or ``-I`` skip ``site`` or ``PYTHONPATH`` and are not covered.
"""

from __future__ import annotations

import os

from . import _config

CHILD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_child")


def export() -> bool:
    """Put :data:`CHILD_DIR` on ``PYTHONPATH`` (once); False when turned off."""
    if not _config.flag("LAMBDASLIM_CHILDREN", True):
        return False
    current = os.environ.get("PYTHONPATH", "")
    entries = current.split(os.pathsep) if current else []
    if CHILD_DIR not in entries:
        os.environ["PYTHONPATH"] = os.pathsep.join([CHILD_DIR, *entries])
    return True
