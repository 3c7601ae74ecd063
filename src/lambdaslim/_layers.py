"""Build a local /opt from packed layers: requirement lists, site-packages folders or zips.

Used by the ``lambda_layers`` pytest fixture, ``lambdaslim demo`` and the benchmarks.
``pip install --target`` results are cached across runs (keyed by the requirements and the
interpreter); packed layers are cached keyed by the folder, the level and lambdaslim's own
source (the layer's ``python/`` carries lambdaslim, so a changed lambdaslim repacks).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence

from ._emulator import cache_dir


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def source_digest() -> str:
    """A digest of lambdaslim's own files (what a layer's ``python/lambdaslim`` holds)."""
    package = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    for name in sorted(os.listdir(package)):
        if name.endswith(".py"):
            with open(os.path.join(package, name), "rb") as fh:
                h.update(name.encode() + b"\0" + fh.read())
    return h.hexdigest()[:16]


def pip_site(requirements: Sequence[str], *, python: str | None = None, quiet: bool = True) -> str:
    """``pip install --target`` of ``requirements`` (binary wheels only), cached across runs."""
    python = python or sys.executable
    key = _digest(sorted(requirements), python, sys.version if python == sys.executable else "")
    dest = os.path.join(cache_dir(), "sites", key)
    if os.path.isfile(dest + ".complete"):
        return dest
    staging = f"{dest}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    subprocess.run(
        [python, "-m", "pip", "install", *(["--quiet"] if quiet else []), "--disable-pip-version-check",
         "--no-compile", "--only-binary", ":all:", "--target", staging, *requirements],
        check=True,
    )
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(staging, dest)
    with open(dest + ".complete", "w", encoding="ascii") as fh:
        fh.write(" ".join(requirements))
    return dest


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
    from ._pack import pack_tree

    key = _digest(os.path.abspath(site), _tree_signature(site), level, source_digest())
    out = os.path.join(cache_dir(), "layers", f"{key}.zip")
    if os.path.isfile(out):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    partial = f"{out}.{os.getpid()}.part.zip"
    pack_tree(site, partial, level=level, quiet=True)
    os.replace(partial, out)
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
    """A layer zip for one source: a zip as is, a folder packed, a requirement list installed
    and packed."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isfile(path) and path.endswith(".zip"):
            return os.path.abspath(path)
        if os.path.isdir(path):
            return packed_layer(path, level=level)
        raise FileNotFoundError(f"not a layer zip nor a site-packages folder: {path}")
    return packed_layer(pip_site(list(source)), level=level)


def build_opt(layer_zips: Sequence[str], opt: str) -> str:
    """Lay ``layer_zips`` out in ``opt`` in order, as Lambda does for a function's layers."""
    os.makedirs(opt, exist_ok=True)
    for layer in layer_zips:
        unzip_layer(layer, opt)
    return opt
