"""The pieces of the real Lambda runtime: the emulator binary from the ``aws-sam-cli`` wheel and
a folder holding only ``awslambdaric`` and its requirements (Lambda's /var/runtime)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile

from ._cache import cache_dir
from ._errors import EmulatorError

SAM_CLI_WHEEL_MEMBER = "samcli/local/rapid/aws-lambda-rie-{arch}"


def rie_arch() -> str:
    return "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"


def find_rie() -> str | None:
    """The emulator binary: ``LAMBDASLIM_RIE``, ``aws-lambda-rie`` on PATH, or the cache."""
    explicit = os.environ.get("LAMBDASLIM_RIE")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in ("aws-lambda-rie", f"aws-lambda-rie-{rie_arch()}"):
        found = shutil.which(name)
        if found:
            return found
    cached = os.path.join(cache_dir(), "rie", f"aws-lambda-rie-{rie_arch()}")
    return cached if os.access(cached, os.X_OK) else None


def fetch_rie(dest_dir: str | None = None, *, python: str | None = None) -> str:
    """Download the ``aws-sam-cli`` wheel (no dependencies) and extract only the emulator.

    Returns the binary's path. Uses ``pip download``, so the registry and pip's own settings
    (index, proxy) apply; the wheel itself is deleted afterwards.
    """
    dest_dir = dest_dir or os.path.join(cache_dir(), "rie")
    os.makedirs(dest_dir, exist_ok=True)
    target = os.path.join(dest_dir, f"aws-lambda-rie-{rie_arch()}")
    if os.access(target, os.X_OK):
        return target
    with tempfile.TemporaryDirectory(prefix="lambdaslim-sam-") as tmp:
        subprocess.run(
            [python or sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--only-binary", ":all:", "--dest", tmp, "aws-sam-cli"],
            check=True,
        )
        wheels = [n for n in os.listdir(tmp) if n.startswith("aws_sam_cli-") and n.endswith(".whl")]
        if not wheels:
            raise EmulatorError(f"pip download aws-sam-cli produced no wheel in {tmp}")
        member = SAM_CLI_WHEEL_MEMBER.format(arch=rie_arch())
        with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as zf:
            try:
                data = zf.read(member)
            except KeyError:
                raise EmulatorError(f"{wheels[0]} has no {member}") from None
        partial = f"{target}.{os.getpid()}.part"
        with open(partial, "wb") as fh:
            fh.write(data)
        os.chmod(partial, 0o755)
        os.replace(partial, target)
    return target


RUNTIME_CLIENT = "awslambdaric"


def runtime_dir() -> str:
    """A folder holding only the runtime interface client and its requirements (Lambda's
    /var/runtime), copied from this interpreter's installation; cached by their versions.

    A runtime started with ``python -S`` and this folder on ``PYTHONPATH`` sees none of this
    machine's site-packages: imports come from the task root and the layers, as on Lambda.
    """
    import hashlib
    import re
    from importlib import metadata

    names, seen, dists = [RUNTIME_CLIENT], set(), []
    while names:
        name = names.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name != RUNTIME_CLIENT:
                raise EmulatorError(f"{name}, needed by {RUNTIME_CLIENT}, is not installed") from None
            from ._cache import pip_site  # not installed here: take it from the registry

            return pip_site([RUNTIME_CLIENT])
        dists.append(dist)
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            names.append(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0])
    tag = hashlib.sha256(
        repr((sys.version, sorted((d.metadata["Name"], d.version) for d in dists))).encode()
    ).hexdigest()[:16]
    dest = os.path.join(cache_dir(), "runtime", tag)
    if os.path.isdir(dest):
        return dest
    staging = f"{dest}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    for dist in dists:
        for file in dist.files or []:
            rel = str(file)
            if rel.startswith("..") or os.path.isabs(rel) or "__pycache__" in rel:
                continue
            target = os.path.join(staging, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(str(file.locate()), target)
    try:
        os.replace(staging, dest)
    except OSError:  # another process published it first
        shutil.rmtree(staging, ignore_errors=True)
    return dest
