"""Install binary wheels for a Lambda runtime with pip, from any host, without Docker.

Lambda's Python 3.10 and 3.11 runtimes run on Amazon Linux 2 (glibc 2.26); 3.12 and later on
Amazon Linux 2023 (glibc 2.34). pip is told the target's platform tags (every manylinux tag
up to that glibc, for x86_64 or aarch64), implementation and version, and accepts wheels only,
so what lands in the folder is exactly what the runtime can load.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass

from ._errors import PackError

ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
# Legacy manylinux names and the glibc they stand for.
_LEGACY = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


class ResolveError(PackError):
    """pip could not install the requirements for the target (no wheel, conflict, bad file).

    ``package`` names the requirement pip gave up on when it said which; ``target`` is the
    :class:`Target`; ``pip_output`` holds pip's full output.
    """

    def __init__(self, message: str, *, target: Target, package: str | None = None,
                 pip_output: str = "") -> None:
        super().__init__(message)
        self.target = target
        self.package = package
        self.pip_output = pip_output


@dataclass(frozen=True)
class Target:
    """A Lambda runtime: Python ``major.minor`` and architecture (``x86_64`` or ``arm64``)."""

    python: str
    arch: str

    @classmethod
    def parse(cls, python: str | None = None, arch: str | None = None) -> Target:
        """Validate user input; defaults: this interpreter's version, x86_64."""
        py = python or f"{sys.version_info[0]}.{sys.version_info[1]}"
        py = py.removeprefix("python")
        if py not in PYTHONS:
            raise PackError(f"--python {py}: Lambda runtimes lambdaslim supports are "
                            f"{', '.join(PYTHONS)}")
        a = (arch or "x86_64").lower()
        if a not in ARCHES:
            raise PackError(f"--arch {a}: use x86_64 or arm64")
        return cls(py, "arm64" if ARCHES[a] == "aarch64" else "x86_64")

    @property
    def machine(self) -> str:
        """The ELF/uname machine name: ``x86_64`` or ``aarch64``."""
        return ARCHES[self.arch]

    @property
    def glibc(self) -> tuple[int, int]:
        """glibc of the runtime's Amazon Linux: 2.26 (AL2, Python ≤ 3.11) or 2.34 (AL2023)."""
        return (2, 26) if tuple(int(x) for x in self.python.split(".")) <= (3, 11) else (2, 34)

    @property
    def python_tag(self) -> str:
        return "cp" + self.python.replace(".", "")

    def platform_tags(self) -> list[str]:
        """Every manylinux tag the runtime accepts, most specific first."""
        lowest = 17 if self.machine == "aarch64" else 5
        tags = []
        for minor in range(self.glibc[1], lowest - 1, -1):
            tags.append(f"manylinux_2_{minor}_{self.machine}")
            legacy = _LEGACY.get((2, minor))
            if legacy:
                tags.append(f"{legacy}_{self.machine}")
        return tags

    def __str__(self) -> str:
        return f"Python {self.python} on {self.arch} (glibc {self.glibc[0]}.{self.glibc[1]})"


def pip_command(target: Target, dest: str, requirements: list[str], requirement_files: list[str],
                pip_args: list[str] | None = None) -> list[str]:
    """The pip command line that installs ``requirements`` for ``target`` into ``dest``."""
    cmd = [sys.executable, "-m", "pip", "install", "--target", dest,
           "--implementation", "cp", "--python-version", target.python,
           "--only-binary", ":all:", "--no-compile", "--disable-pip-version-check",
           "--no-warn-script-location", "--progress-bar", "off"]
    for tag in target.platform_tags():
        cmd += ["--platform", tag]
    for path in requirement_files:
        cmd += ["-r", path]
    cmd += list(pip_args or [])
    cmd += requirements
    return cmd


_NO_WHEEL = re.compile(r"Could not find a version that satisfies the requirement (\S+)")
_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")
_CONFLICT = re.compile(r"(Cannot install .*? because these package versions have conflicting "
                       r"dependencies\.|ResolutionImpossible)")
_INSTALLED = re.compile(r"^Successfully installed (.+)$", re.M)


def explain_failure(output: str, target: Target) -> ResolveError:
    """Turn pip's output into one error that names the package and the target."""
    match = _NO_WHEEL.search(output) or _NO_MATCH.search(output)
    if match:
        package = match.group(1)
        versions = re.search(r"\(from versions: ([^)]*)\)", output)
        seen = versions.group(1).strip() if versions else ""
        hint = (f"no version of it has a wheel for {target.python_tag} on "
                f"{target.platform_tags()[0]} or older manylinux tags"
                if seen in ("", "none") else
                f"the versions with a compatible wheel are: {seen}")
        return ResolveError(
            f"cannot install {package} for {target}: {hint}. Pin a version that publishes such "
            f"a wheel, or build one on a Linux {target.machine} machine and pass it to pip "
            f"(--pip-arg=--find-links=DIR)", target=target, package=package, pip_output=output)
    conflict = _CONFLICT.search(output)
    if conflict:
        lines = [ln.strip() for ln in output.splitlines() if ln.strip().startswith("The conflict is caused by")
                 or ln.strip().startswith(("The user requested", "    "))]
        detail = "; ".join(ln for ln in lines if ln)[:500]
        return ResolveError(f"conflicting requirements for {target}: {conflict.group(1)} {detail}",
                            target=target, pip_output=output)
    errors = [ln.removeprefix("ERROR: ") for ln in output.splitlines() if ln.startswith("ERROR:")]
    first = errors[0] if errors else (output.strip().splitlines() or ["pip failed"])[-1]
    return ResolveError(f"pip could not install the requirements for {target}: {first}",
                        target=target, pip_output=output)


def install(
    target: Target,
    dest: str,
    *,
    requirements: list[str] | None = None,
    requirement_files: list[str] | None = None,
    pip_args: list[str] | None = None,
) -> list[str]:
    """Install wheels for ``target`` into the folder ``dest``; return ``name-version`` items.

    Raises :class:`ResolveError` (naming the package and the target) when pip fails.
    """
    reqs = list(requirements or [])
    files = [os.fspath(f) for f in requirement_files or []]
    for path in files:
        if not os.path.isfile(path):
            raise ResolveError(f"requirements file not found: {path}", target=target)
    if not reqs and not files:
        raise ResolveError("nothing to install: give -r FILE or requirement names", target=target)
    os.makedirs(dest, exist_ok=True)
    cmd = pip_command(target, dest, reqs, files, pip_args)
    env = {**os.environ, "PIP_NO_INPUT": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        if "No module named pip" in proc.stdout:
            raise ResolveError(f"{sys.executable} has no pip; install it (python -m ensurepip)",
                               target=target, pip_output=proc.stdout)
        raise explain_failure(proc.stdout, target)
    found = _INSTALLED.search(proc.stdout)
    return found.group(1).split() if found else []


def runtime_requirements() -> list[str]:
    """lambdaslim's own runtime dependencies (zstandard, filelock) as requirement strings."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        reqs = requires("lambdaslim") or []
    except PackageNotFoundError:  # running from a source tree
        reqs = []
    plain = [r.split(";")[0].strip() for r in reqs if "extra ==" not in r]
    return plain or ["zstandard>=0.22", "filelock>=3.12"]


def install_runtime(target: Target, dest: str, pip_args: list[str] | None = None) -> list[str]:
    """Install zstandard and filelock built for ``target`` into ``dest`` (the layer's python/).

    zstandard is a compiled extension: the copy in the packing interpreter only fits a layer
    when host and target agree on Python version and architecture.
    """
    return install(target, dest, requirements=runtime_requirements(), pip_args=pip_args)
