"""The files a layer's ``python/`` folder needs: lambdaslim itself and its runtime dependencies.

By default they come from the interpreter running ``lambdaslim pack``; a build for another
Python or architecture passes a folder prepared for that target instead.
"""

from __future__ import annotations

import os
from importlib import metadata

from ._errors import PackError

RUNTIME_DISTS = ("zstandard", "filelock")


def compile_runtime(folder: str) -> int:
    """Write unchecked-hash .pyc files for every .py under ``folder`` (the layer's python/).

    /opt is read-only on Lambda, so without them every cold start compiles lambdaslim again.
    They carry this interpreter's tag (cpython-311...): another Python ignores them.
    """
    import py_compile

    count = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith(".py"):
                py_compile.compile(
                    os.path.join(dirpath, name), doraise=True, quiet=1,
                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
                count += 1
    return count


def runtime_files(runtime_dir: str | None = None) -> list[tuple[str, str]]:
    """(absolute source path, path under ``python/``) for every file the layer must carry."""
    out: list[tuple[str, str]] = []
    package_dir = os.path.dirname(os.path.abspath(__file__))
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, os.path.dirname(package_dir)).replace(os.sep, "/")
            out.append((full, rel))
    if runtime_dir is not None:
        for dirpath, dirnames, filenames in os.walk(runtime_dir):
            for name in filenames:
                full = os.path.join(dirpath, name)
                out.append((full, os.path.relpath(full, runtime_dir).replace(os.sep, "/")))
        return out
    return out + installed_runtime_files()


def installed_runtime_files() -> list[tuple[str, str]]:
    """(absolute path, path under python/) of this interpreter's zstandard and filelock."""
    out: list[tuple[str, str]] = []
    for dist_name in RUNTIME_DISTS:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise PackError(f"{dist_name} is not installed in this interpreter; install lambdaslim with pip") from None
        for entry in dist.files or ():
            src = os.path.abspath(str(dist.locate_file(entry)))
            rel = os.path.normpath(str(entry)).replace(os.sep, "/")
            if rel.startswith("../") or "__pycache__" in rel.split("/") or not os.path.isfile(src):
                continue
            out.append((src, rel))
    return out
