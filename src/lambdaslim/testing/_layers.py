"""Build a local /opt from packed layers: requirement lists, site-packages folders or zips.

Used by the ``lambda_layers`` pytest fixture, ``lambdaslim demo`` and the benchmarks. Layers
built from requirements (``lambdaslim pack``'s pipeline) and layers packed from folders are
cached across runs, keyed by their input, the zstd level, the interpreter and lambdaslim's own
source (a layer's ``python/`` carries lambdaslim, so a changed lambdaslim rebuilds).
``pip install --target`` folders are cached too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence

from ._cache import _digest, cache_dir, pip_site


def source_digest() -> str:
    """A digest of lambdaslim's own files (a layer's ``python/lambdaslim`` is made from them)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(package):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                with open(path, "rb") as fh:
                    h.update(os.path.relpath(path, package).encode() + b"\0" + fh.read())
    return h.hexdigest()[:16]


def _tree_signature(folder: str) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            st = os.stat(os.path.join(dirpath, name))
            h.update(f"{os.path.relpath(os.path.join(dirpath, name), folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def packed_layer(site: str, *, level: int = 3) -> str:
    """The layer zip of ``site`` packed by ``lambdaslim pack`` at ``level``, cached."""
    from ..build._pack import pack_tree

    key = _digest(os.path.abspath(site), _tree_signature(site), level, source_digest())
    out = os.path.join(cache_dir(), "layers", f"{key}.zip")
    if os.path.isfile(out):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    partial = f"{out}.{os.getpid()}.part.zip"
    pack_tree(site, partial, level=level, quiet=True)
    os.replace(partial, out)
    return out


def built_layer(requirements: Sequence[str], *, level: int = 3, log: bool = False) -> str:
    """The layer zip ``lambdaslim pack REQ...`` builds for this interpreter (resolve from the
    registry, prune, compile bytecode, pack), cached by the requirements, the level, the
    interpreter and lambdaslim's own source."""
    from ..build._build import BuildOptions, build, stderr_log

    key = _digest(sorted(requirements), level, sys.version, source_digest())
    out = os.path.join(cache_dir(), "layers", f"built-{key}.zip")
    if os.path.isfile(out):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    partial = f"{out}.{os.getpid()}.part.zip"
    result = build(BuildOptions(output=partial, requirements=list(requirements), level=level, quiet=not log),
                   log=stderr_log if log else None)
    if len(result.layers) != 1:
        raise RuntimeError(f"expected one layer zip, the build wrote {len(result.layers)}")
    os.replace(result.layers[0].path, out)
    return out


def unzip_layer(layer_zip: str, opt: str) -> None:
    """Unzip a layer as Lambda does (later layers overwrite earlier ones), keeping modes."""
    with zipfile.ZipFile(layer_zip) as zf:
        for info in zf.infolist():
            target = zf.extract(info, opt)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(target, mode)


def layer_zip_for(source: str | os.PathLike[str] | Sequence[str], *, level: int = 3) -> str:
    """A layer zip for one source: a zip as is, a folder packed, a requirement list built by
    ``lambdaslim pack``'s pipeline (installed, pruned, compiled to bytecode, packed)."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isfile(path) and path.endswith(".zip"):
            return os.path.abspath(path)
        if os.path.isdir(path):
            return packed_layer(path, level=level)
        raise FileNotFoundError(f"not a layer zip nor a site-packages folder: {path}")
    return built_layer(list(source), level=level)


def build_opt(layer_zips: Sequence[str], opt: str) -> str:
    """Lay ``layer_zips`` out in ``opt`` in order, as Lambda does for a function's layers."""
    os.makedirs(opt, exist_ok=True)
    for layer in layer_zips:
        unzip_layer(layer, opt)
    return opt
