"""``lambdaslim verify layer.zip``: import every packed name the way Lambda would, under a budget.

The layer zips are unzipped into a temporary ``opt/`` folder. A fresh interpreter (``-I -S``:
no site-packages, no PYTHONPATH, no current folder) sees only ``opt/python``, imports
``lambdaslim.bootstrap`` with the layer roots, extraction root and /tmp limit pointed at
temporary folders, and imports each name in turn; per name it reports ok or the error,
the seconds spent extracting and importing, and the /tmp used so far.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field

from .._errors import LambdaslimError
from .._runtime._errors import ArchiveError
from ._limits import UNZIPPED_LAYERS
from .._size import format_size

_MARK = "@@lambdaslim-verify@@"
_TAG = re.compile(r"\.cpython-(\d)(\d+)-(x86_64|aarch64)-linux-gnu\.so$")

_CHILD = r'''
import importlib, json, os, sys, time
cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["python_dir"])
mark = cfg["mark"]
t = time.perf_counter()
try:
    import lambdaslim.bootstrap as boot
    from lambdaslim._runtime._budget import tree_bytes
except BaseException as exc:
    print(mark + json.dumps({"name": "lambdaslim.bootstrap", "ok": False,
                             "error": "%s: %s" % (type(exc).__name__, exc),
                             "extract_seconds": 0.0, "import_seconds": time.perf_counter() - t,
                             "tmp_bytes": 0}), flush=True)
    raise SystemExit(1)
tmp = os.environ["LAMBDASLIM_TMP"]

def step(name, action):
    before = {k: v["seconds"] for k, v in boot.status().items()}
    t = time.perf_counter()
    err = missing = None
    try:
        action()
    except BaseException as exc:
        err = "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        missing = [getattr(exc, "name", None), getattr(exc, "filename", None)]
        missing = [m if isinstance(m, str) else None for m in missing]
    total = time.perf_counter() - t
    extract = sum(v["seconds"] - before.get(k, 0.0) for k, v in boot.status().items())
    print(mark + json.dumps({"name": name, "ok": err is None, "error": err,
                             "extract_seconds": extract,
                             "import_seconds": max(0.0, total - extract),
                             "tmp_bytes": tree_bytes(tmp), "missing": missing}), flush=True)

for name in cfg["names"]:
    step(name, lambda name=name: importlib.import_module(name))
for key, info in boot.status().items():  # layers the runtime sets aside
    if info["state"] in ("broken", "shadowed"):
        print(mark + json.dumps({"name": "%s %s" % (info["state"], info["source"]),
                                 "ok": info["state"] == "shadowed",
                                 "error": info["error"] or "shadowed by %s" % info["shadowed_by"],
                                 "extract_seconds": 0.0, "import_seconds": 0.0, "tmp_bytes": 0}), flush=True)
if cfg.get("run"):
    step("--run", lambda: exec(compile(cfg["run"], "<lambdaslim verify --run>", "exec"),
                               {"__name__": "__lambdaslim_verify__"}))
'''


class VerifyError(LambdaslimError, ValueError):
    """The layer cannot be verified on this machine (architecture, missing interpreter...)."""


@dataclass
class NameResult:
    name: str
    ok: bool
    error: str | None
    extract_seconds: float
    import_seconds: float
    tmp_bytes: int
    blame: str | None = None  # the build step that removed what it needed


@dataclass
class VerifyResult:
    layers: list[str]
    python: str
    machine: str
    tmp_limit: int | None
    results: list[NameResult] = field(default_factory=list)
    output: str = ""  # the child's other output (warnings, prints)
    returncode: int = 0

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results) and self.returncode == 0

    def render(self) -> str:
        width = max([len(r.name) for r in self.results] + [10])
        lines = [f"verifying {', '.join(os.path.basename(p) for p in self.layers)}: Python "
                 f"{self.python} on {self.machine}, /tmp limit "
                 f"{format_size(self.tmp_limit) if self.tmp_limit else 'none'}"]
        for r in self.results:
            if r.ok:
                lines.append(f"  ok      {r.name:<{width}}  extract {r.extract_seconds:6.2f} s  "
                             f"import {r.import_seconds:6.2f} s  /tmp {format_size(r.tmp_bytes):>9}"
                             + (f"  ({r.error})" if r.error else ""))
            else:
                lines.append(f"  FAILED  {r.name:<{width}}  {r.error}"
                             + (f"\n          {r.blame}" if r.blame else ""))
        failed = sum(1 for r in self.results if not r.ok)
        if self.returncode and not failed:
            lines.append(f"  the interpreter exited with {self.returncode}:\n{self.output[-2000:]}")
        lines.append(f"{len(self.results) - failed} ok, {failed} failed")
        return "\n".join(lines)


def unzip_layers(layers: list[str], opt: str, limit: int = UNZIPPED_LAYERS) -> None:
    """Unzip like Lambda does (later layers over earlier ones), keeping permission bits.

    Layers whose members add up to more than ``limit`` (Lambda's 250 MB) are refused before
    anything is written, and no member is written past its declared size, so at most
    ``limit`` bytes ever land in ``opt``.
    """
    zips = []
    try:
        for layer in layers:
            try:
                zips.append(zipfile.ZipFile(layer))
            except FileNotFoundError:
                raise VerifyError(f"{layer}: no such file") from None
            except Exception as exc:  # zipfile raises many types on hostile input
                raise VerifyError(f"{layer}: not a zip file ({type(exc).__name__}: {exc})") from None
        declared = sum(i.file_size for zf in zips for i in zf.infolist())
        if declared > limit:
            raise VerifyError(f"{', '.join(layers)}: {declared} bytes unzipped, over Lambda's limit of "
                              f"{limit} bytes for all layers; refused before unzipping")
        for layer, zf in zip(layers, zips):
            for info in zf.infolist():
                try:
                    path = zf.extract(info, opt)  # never more than info.file_size (CRC-checked)
                except OSError:
                    raise
                except Exception as exc:  # encrypted, unknown compression, corrupt member
                    raise VerifyError(f"{layer}: cannot unzip {info.filename}: {type(exc).__name__}: {exc}") from None
                mode = (info.external_attr >> 16) & 0o777
                if mode and not info.is_dir():
                    os.chmod(path, mode)
    finally:
        for zf in zips:
            zf.close()


def layer_target(opt: str) -> tuple[str | None, str | None]:
    """(Python ``3.12``, machine) the layer's python/ was built for, from zstandard's extension."""
    for path in glob.glob(os.path.join(opt, "python", "lambdaslim", "_vendor", "zstandard", "*.so")):
        m = _TAG.search(os.path.basename(path))
        if m:
            return f"{m.group(1)}.{m.group(2)}", m.group(3)
    return None, None


def find_interpreter(python: str) -> str | None:
    """An interpreter of version ``python`` on this machine (this one, PATH, pyenv)."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == python:
        return sys.executable
    found = shutil.which(f"python{python}")
    if found:
        return found
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for candidate in sorted(glob.glob(os.path.join(pyenv, "versions", f"{python}.*", "bin", "python"))):
        return candidate
    return None


def default_names(opt: str) -> list[str]:
    """Every public top-level import name the packed layers provide."""
    from .._runtime._format import LAYER_DIR, read_index

    names: list[str] = []
    base = os.path.join(opt, LAYER_DIR)
    for layer_id in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        try:
            index = read_index(os.path.join(base, layer_id))
        except ArchiveError:
            continue  # set aside at run time too; the child reports it

        for unit in index.units:
            for name in unit.import_names:
                if not any(part.startswith("_") for part in name.split(".")) and name not in names:
                    names.append(name)
    return names


def verify(
    layers: list[str],
    *,
    tmp_limit: int | None = 512 * 1000 * 1000,
    names: list[str] | None = None,
    run: str | None = None,
    interpreter: str | None = None,
    timeout: float | None = 1800,
    entry_points: bool | None = None,
    python_mode: str = "memory",
) -> VerifyResult:
    """Unzip ``layers`` into a temporary /opt and import ``names`` (default: all) there, then
    load every entry point (default: when ``names`` is not given)."""
    from . import _entrypoints
    from ._elf import host_machine

    with tempfile.TemporaryDirectory(prefix="lambdaslim-verify-") as work:
        opt = os.path.join(work, "opt")
        unzip_layers(layers, opt)
        if not os.path.isdir(os.path.join(opt, "python", "lambdaslim")):
            raise VerifyError("the layer has no python/lambdaslim folder (not made by lambdaslim pack)")
        python, machine = layer_target(opt)
        machine = machine or host_machine()
        python = python or f"{sys.version_info[0]}.{sys.version_info[1]}"
        if machine != host_machine():
            raise VerifyError(f"the layer is built for {machine}; this machine is {host_machine()} "
                              "and cannot run it (verify it on a matching machine)")
        exe = interpreter or find_interpreter(python)
        if exe is None:
            raise VerifyError(f"the layer is built for Python {python}; no python{python} found "
                              "here (pass --interpreter PATH)")
        wanted = list(names) if names else default_names(opt)
        tmp = os.path.join(work, "tmp", "lambdaslim")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LAMBDASLIM_"))}
        env["LAMBDASLIM_LAYER_ROOTS"] = opt
        env["LAMBDASLIM_TMP"] = tmp
        env["LAMBDASLIM_PYTHON"] = python_mode  # memory (the default) or disk
        if tmp_limit:
            env["LAMBDASLIM_TMP_LIMIT"] = str(tmp_limit)
        eps = _entrypoints.layer_entry_points(opt) if (not names if entry_points is None else entry_points) else []
        cfg = {"python_dir": os.path.join(opt, "python"), "names": wanted, "run": run, "mark": _MARK,
               "entry_points": _entrypoints.child_config(eps)}
        try:
            proc = subprocess.run([exe, "-I", "-S", "-c", _CHILD + _entrypoints.CHILD, json.dumps(cfg)], env=env,
                                  cwd=work, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout)
            out, code = proc.stdout, proc.returncode
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(errors="replace")
            code = -1
        result = VerifyResult(list(layers), python, machine, tmp_limit, returncode=code)
        other = []
        for line in out.splitlines():
            if line.startswith(_MARK):
                d = json.loads(line[len(_MARK):])
                missing = d.get("missing") or [None, None]
                result.results.append(NameResult(d["name"], d["ok"], d["error"], d["extract_seconds"],
                                                 d["import_seconds"], d["tmp_bytes"], None if d["ok"] else
                                                 _entrypoints.explain(opt, missing[0], missing[1])))
            else:
                other.append(line)
        result.output = "\n".join(other)
        done = {r.name for r in result.results}
        for name in wanted + (["--run"] if run else []):
            if name not in done and code != 0:  # the interpreter died (segfault, timeout)
                result.results.append(NameResult(name, False, f"not reached: the interpreter exited "
                                                 f"with {code}", 0.0, 0.0, 0))
                break
        return result
