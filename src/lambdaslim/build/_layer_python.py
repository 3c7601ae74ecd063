"""What a layer's ``python/`` folder holds: the parts of lambdaslim that run in Lambda, and
lambdaslim's private copies of zstandard and filelock.

Only the runtime parts ship (:data:`RUNTIME_PARTS`): the build tools, the test harness, the
CLI and the demo never run in a function. zstandard and filelock go under
``lambdaslim/_vendor/`` with their absolute imports rewritten, and without their dist-info, so
they never shadow the function's own copies (see :mod:`lambdaslim._runtime._deps`). By default
they come from the interpreter running ``lambdaslim pack``; a build for another Python or
architecture passes a folder prepared for that target instead.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from importlib import metadata

from ._errors import PackError

RUNTIME_DISTS = ("zstandard", "filelock")

#: Files and folders of the ``lambdaslim`` package that a layer carries.
RUNTIME_PARTS = (
    "__init__.py", "_errors.py", "_size.py", "_version.py", "bootstrap.py", "budget.py", "py.typed",
    "_runtime", "_handler", "s3",
)

VENDOR_DIR = "lambdaslim/_vendor"

#: Files of the runtime dependencies that never run on CPython: zstandard's cffi backend
#: (11 MB; the C backend always loads). Left out of every layer, whatever built python/.
UNUSED = ("zstandard/_cffi.*", "zstandard/backend_cffi.py")

_SELF_IMPORT = re.compile(
    r"^(?P<indent>[ \t]*)(?P<kw>from|import)[ \t]+(?P<name>" + "|".join(RUNTIME_DISTS) + r")(?P<rest>[. \t].*)?$",
    re.MULTILINE,
)


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


def package_files() -> list[tuple[str, str]]:
    """(absolute path, path under python/) of the lambdaslim files a layer carries."""
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out: list[tuple[str, str]] = []
    for part in RUNTIME_PARTS:
        full = os.path.join(package_dir, part)
        if os.path.isfile(full):
            out.append((full, f"lambdaslim/{part}"))
            continue
        for dirpath, dirnames, filenames in os.walk(full):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                if name.endswith((".py", ".typed")):
                    path = os.path.join(dirpath, name)
                    out.append((path, "lambdaslim/" + os.path.relpath(path, package_dir).replace(os.sep, "/")))
    return out


def _vendored(rel: str) -> str | None:
    """Where a runtime dependency's file goes under python/, or None to leave it out."""
    top = rel.split("/", 1)[0]
    if top not in RUNTIME_DISTS or "__pycache__" in rel.split("/") or rel.endswith(".pyi"):
        return None  # dist-info, scripts, caches and stubs stay out: nothing at run time reads them
    if any(fnmatch.fnmatchcase(rel, pattern) for pattern in UNUSED):
        return None
    return f"{VENDOR_DIR}/{rel}"


def runtime_files(runtime_dir: str | None = None) -> list[tuple[str, str]]:
    """(absolute source path, path under ``python/``) for every file the layer must carry."""
    out = package_files()
    if runtime_dir is not None:
        deps = []
        for dirpath, dirnames, filenames in os.walk(runtime_dir):
            for name in filenames:
                full = os.path.join(dirpath, name)
                deps.append((full, os.path.relpath(full, runtime_dir).replace(os.sep, "/")))
    else:
        deps = installed_runtime_files()
    for full, rel in deps:
        dest = _vendored(rel)
        if dest is not None:
            out.append((full, dest))
    names = {rel for _, rel in out}
    for dist in RUNTIME_DISTS:
        if f"{VENDOR_DIR}/{dist}/__init__.py" not in names:
            raise PackError(f"{dist} is missing from the runtime folder {runtime_dir or '(this interpreter)'}")
    return out


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


def dep_versions(runtime_dir: str | None = None) -> dict[str, str]:
    """{name: version} of the zstandard and filelock a layer's python/ gets."""
    out: dict[str, str] = {}
    if runtime_dir is None:
        for name in RUNTIME_DISTS:
            out[name] = metadata.version(name)
        return out
    for entry in os.listdir(runtime_dir):
        if entry.endswith(".dist-info"):
            name, _, version = entry[: -len(".dist-info")].partition("-")
            if name.lower() in RUNTIME_DISTS:
                out[name.lower()] = version
    return out


def vendor_imports(text: str) -> str:
    """``text`` (a vendored module) with its absolute imports of itself made private."""
    def swap(m: re.Match[str]) -> str:
        rest = m.group("rest") or ""
        if m.group("kw") == "import" and not rest.startswith("."):
            # "import filelock" binds the name filelock: keep that name for the code below
            return f"{m.group('indent')}from lambdaslim._vendor import {m.group('name')}{rest}"
        return f"{m.group('indent')}{m.group('kw')} lambdaslim._vendor.{m.group('name')}{rest}"

    return _SELF_IMPORT.sub(swap, text)


def stage(runtime: list[tuple[str, str]], folder: str, bytecode: bool,
          versions: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Copy the python/ files into ``folder``, make the vendored copies private, compile them.

    Returns (path in ``folder``, path under python/) for every file to zip.
    """
    for full, rel in runtime:
        dest = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if rel.startswith(VENDOR_DIR + "/") and rel.endswith(".py"):
            with open(full, encoding="utf-8") as fh:
                text = vendor_imports(fh.read())
            with open(dest, "w", encoding="utf-8") as fh:
                fh.write(text)
            shutil.copymode(full, dest)
        else:
            shutil.copy2(full, dest)
    vendor_init = os.path.join(folder, VENDOR_DIR, "__init__.py")
    with open(vendor_init, "w", encoding="utf-8") as fh:
        fh.write('"""lambdaslim\'s private zstandard and filelock (see lambdaslim._runtime._deps)."""\n\n'
                 f"VERSIONS = {dict(sorted((versions or {}).items()))!r}\n")
    if bytecode:
        compile_runtime(folder)
    out = []
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            full = os.path.join(dirpath, name)
            out.append((full, os.path.relpath(full, folder).replace(os.sep, "/")))
    return out
