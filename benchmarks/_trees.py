"""Reference trees for the benchmarks, built from registry wheels and cached between runs.

``ml``:   numpy + scipy + pandas + scikit-learn (issue 2's compression target)
``torch``: the same plus torch 2.13.0 CPU (issues 3's extraction figures; the article's stack)
``transformers``: transformers (no torch: tokenizers and configs) beside scikit-learn, which it
probes for without importing (code that lists and reads its own sources at import)
``pure``: a dozen small pure-Python packages (requests, attrs, click, jinja2, ...)

Each tree is ``pip install --target`` output with tests folders, ``__pycache__`` and ``.pyi``
stubs removed (the measurements' "pruned" tree, without stripping shared libraries).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

SRC = str(Path(__file__).resolve().parent.parent / "src")
CACHE = Path(os.environ.get("LAMBDASLIM_BENCH_CACHE", Path.home() / ".cache" / "lambdaslim-bench"))
STACKS = {
    "small": ["numpy", "six"],
    "ml": ["numpy", "scipy", "pandas", "scikit-learn"],
    "torch": ["torch==2.13.0", "numpy", "scipy", "pandas", "scikit-learn"],
    "transformers": ["transformers", "scikit-learn", "pandas"],
    # small pure-Python packages (issue 9: memory mode must not be slower than disk mode here)
    "pure": ["requests", "attrs", "click", "jinja2", "packaging", "pyparsing", "python-dateutil",
             "pytz", "tabulate", "jmespath", "six"],
}


def _light_prune(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        here = Path(dirpath)
        inside_package = here != root
        for d in list(dirnames):
            if d == "__pycache__" or (inside_package and d in ("tests", "test")):
                shutil.rmtree(here / d)
                dirnames.remove(d)
        for f in filenames:
            if f.endswith(".pyi"):
                (here / f).unlink()


def tree(name: str) -> Path:
    """The folder of stack ``name``, installed and pruned once, then reused."""
    dest = CACHE / name
    done = CACHE / f"{name}.complete"
    if done.exists():
        return dest
    CACHE.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest, ignore_errors=True)
    print(f"installing {' '.join(STACKS[name])} into {dest} ...", file=sys.stderr)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
         "--only-binary", ":all:", "--target", str(dest), *STACKS[name]],
        check=True,
    )
    _light_prune(dest)
    done.write_text("")
    return dest


def shipped(name: str) -> Path:
    """Stack ``name`` as ``lambdaslim pack --strip`` ships it: default pruning steps, shared
    libraries stripped (verified), unchecked-hash bytecode beside every .py (cached)."""
    if SRC not in sys.path:
        sys.path.insert(0, SRC)
    from lambdaslim.build import _bytecode, _elf, _prune

    dest = CACHE / f"{name}-shipped"
    done = CACHE / f"{name}-shipped.complete"
    if done.exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(tree(name), dest, symlinks=True)
    print(f"pruning, stripping and compiling {dest} ...", file=sys.stderr)
    _prune.prune(str(dest))
    _prune.strip_tree(str(dest), machine=_elf.host_machine())
    _bytecode.compile_tree(str(dest), _bytecode.interpreter_version())
    done.write_text("")
    return dest


def layer_root(site: Path, level: int, work: Path) -> Path:
    """``site`` packed at zstd ``level`` into ``work/layer.zip`` and unzipped (modes kept) as
    Lambda lays a layer out in /opt: returns that folder, ``work/opt``."""
    import time
    import zipfile

    if SRC not in sys.path:
        sys.path.insert(0, SRC)
    from lambdaslim.build._pack import pack_tree

    started = time.monotonic()
    pack_tree(str(site), str(work / "layer.zip"), level=level, quiet=True)
    print(f"packed at level {level} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    opt = work / "opt"
    with zipfile.ZipFile(work / "layer.zip") as zf:
        for info in zf.infolist():
            zf.extract(info, opt)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(opt / info.filename, mode)
    return opt


def size_of(root: Path) -> tuple[int, int]:
    """(bytes, files) of a tree."""
    total = files = 0
    for dirpath, _, filenames in os.walk(root):
        for f in filenames:
            total += os.lstat(os.path.join(dirpath, f)).st_size
            files += 1
    return total, files


if __name__ == "__main__":
    for n in sys.argv[1:] or ["ml"]:
        t = tree(n)
        b, f = size_of(t)
        print(f"{n}: {t} {b / 1e6:.1f} MB in {f} files")


#: How the last :func:`fresh_dir` was made, for the benchmark's report.
FRESH = {"how": "?"}


@contextlib.contextmanager
def fresh_dir(base: Path, size: str = "8g") -> Iterator[Path]:
    """An empty folder on a tmpfs mounted for this run alone (as root), else a new folder in
    ``base`` with the page cache dropped: writing a tree right after deleting one is 5-10x
    slower on this VM's ext4 (see shared/reference/measurements.md)."""
    d = Path(tempfile.mkdtemp(dir=base))
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True).returncode == 0
    if mounted:
        FRESH["how"] = "a fresh tmpfs per run"
    else:
        FRESH["how"] = f"a fresh folder in {base} per run, caches dropped"
        subprocess.run("sync; echo 1 > /proc/sys/vm/drop_caches", shell=True, capture_output=True)
    try:
        yield d
    finally:
        if mounted:
            subprocess.run(["umount", str(d)], check=False)
        shutil.rmtree(d, ignore_errors=True)
