"""Run by ``site`` in child interpreters of a process that imported ``lambdaslim.bootstrap``.

Installs the bootstrap's import hook, then runs the ``sitecustomize`` the interpreter would have run
without this one (a user's own keeps working). It never stops the child from starting: a
failure is reported on stderr. See :mod:`lambdaslim._runtime._children`.
"""

from __future__ import annotations

import os
import sys


def _install(here: str) -> None:
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(here)))  # holds lambdaslim/
    if package_root not in sys.path:
        sys.path.append(package_root)
    try:
        # The hook alone (lambdaslim.bootstrap's install); a later `import lambdaslim.bootstrap`
        # gets this same finder. LAMBDASLIM_EAGER is the parent's business, not the children's.
        from lambdaslim._runtime._finder import install

        install()
    except Exception as exc:  # the child must start whatever happens
        sys.stderr.write(f"lambdaslim: packed distributions are not importable in this process: {exc!r}\n")


def _chain(here: str) -> None:
    """Run the next ``sitecustomize`` on sys.path, as if this one were not there."""
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("sitecustomize", sys.path)
    if spec is None or spec.loader is None or spec.origin is None:
        return
    if os.path.dirname(os.path.abspath(spec.origin)) == here:
        return
    import importlib.util

    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def _main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    try:
        _install(here)
    finally:
        _chain(here)


_main()
