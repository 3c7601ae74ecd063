"""``--keep-imported CMD``: keep only the files a real run of the function's code touches.

The command runs against the unpacked tree (first on ``PYTHONPATH``, the machine's own
site-packages hidden) with a ``sitecustomize`` that installs an audit hook. Every file the
interpreter opens (sources, data files), every library mapped into the process
(``/proc/self/maps``: extension modules and what they load) and every imported module's file
is recorded, in the command's child interpreters too. Everything else goes, except metadata.
The command then runs again on the pruned tree; if it fails, packing stops.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from . import _prune
from ._errors import PackError

_SITECUSTOMIZE = r'''
import os, sys

_out = os.environ.get("LAMBDASLIM_TRACE_OUT")
_root = os.environ.get("LAMBDASLIM_TRACE_ROOT", "")
if _root:
    # Lambda sees only the layer: hide this machine's site-packages from the traced code.
    sys.path[:] = [p for p in sys.path
                   if not ("site-packages" in p or "dist-packages" in p) or p.startswith(_root)]
if _out:
    import atexit
    _seen = set()
    _add = _seen.add
    _getcwd = os.getcwd
    _join = os.path.join

    def _hook(event, args):
        if event == "open" or event == "ctypes.dlopen":
            path = args[0]
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if isinstance(path, str):
                _add(path if path.startswith("/") else _join(_getcwd(), path))

    def _dump():
        files = set(_seen)
        for module in list(sys.modules.values()):
            f = getattr(module, "__file__", None)
            if isinstance(f, str):
                files.add(f)
        try:
            with open("/proc/self/maps") as fh:
                for line in fh:
                    parts = line.split(None, 5)
                    if len(parts) == 6 and parts[5].startswith("/"):
                        files.add(parts[5].strip())
        except OSError:
            pass
        with open(os.path.join(_out, "trace-%d.txt" % os.getpid()), "w") as fh:
            fh.write("\n".join(sorted(files)))

    atexit.register(_dump)
    sys.addaudithook(_hook)
'''


class TraceError(PackError):
    """The traced command failed before or after pruning; nothing is packed.

    ``command``, ``returncode`` and ``output`` (the tail of its stdout and stderr) say why.
    """

    def __init__(self, message: str, *, command: str, returncode: int, output: str) -> None:
        super().__init__(message)
        self.command = command
        self.returncode = returncode
        self.output = output


@dataclass
class TraceResult:
    command: str
    kept_files: int = 0
    removed_files: int = 0
    removed_bytes: int = 0
    removed: list[str] = field(default_factory=list)


def _run(command: str, root: str, site_dir: str, out_dir: str | None, cwd: str | None,
         timeout: float | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([site_dir, root])
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # never write caches into the tree being traced
    env["PYTHONNOUSERSITE"] = "1"
    env["LAMBDASLIM_TRACE_ROOT"] = root
    env.pop("LAMBDASLIM_TRACE_OUT", None)
    if out_dir is not None:
        env["LAMBDASLIM_TRACE_OUT"] = out_dir
    # `python` in the command means the packing interpreter unless the user's PATH says else
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    try:
        return subprocess.run(command, shell=True, cwd=cwd, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(errors="replace")
        return subprocess.CompletedProcess(command, -1, out + f"\n(timed out after {timeout} s)")


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def trace_and_prune(
    root: str,
    command: str,
    *,
    cwd: str | None = None,
    timeout: float | None = 900,
) -> TraceResult:
    """Run ``command`` on ``root``, remove every file it did not touch, run it again.

    Raises :class:`TraceError` when the command fails on the full tree (nothing removed) or
    on the pruned one (the layer must not be written).
    """
    root = os.path.realpath(root)
    if not command.strip():
        raise PackError("--keep-imported needs a command, e.g. \"python -c 'import handler'\"")
    result = TraceResult(command)
    with tempfile.TemporaryDirectory(prefix="lambdaslim-trace-") as work:
        site_dir = os.path.join(work, "site")
        out_dir = os.path.join(work, "out")
        os.makedirs(site_dir)
        os.makedirs(out_dir)
        with open(os.path.join(site_dir, "sitecustomize.py"), "w") as fh:
            fh.write(_SITECUSTOMIZE)
        first = _run(command, root, site_dir, out_dir, cwd, timeout)
        if first.returncode != 0:
            raise TraceError(
                f"--keep-imported: {command!r} fails on the unpruned tree (exit "
                f"{first.returncode}), so it cannot say what to keep:\n{_tail(first.stdout)}",
                command=command, returncode=first.returncode, output=first.stdout)
        touched: set[str] = set()
        for name in os.listdir(out_dir):
            with open(os.path.join(out_dir, name), encoding="utf-8", errors="replace") as fh:
                touched.update(line for line in fh.read().splitlines() if line)
        if not touched:
            raise TraceError(
                f"--keep-imported: {command!r} ran no Python interpreter that could be traced "
                "(it must start `python`, with PYTHONPATH intact)",
                command=command, returncode=0, output=first.stdout)
        prefix = root + os.sep
        keep: set[str] = set()
        for path in touched:
            real = os.path.realpath(path)
            if real.startswith(prefix):
                keep.add(os.path.relpath(real, root).replace(os.sep, "/"))
        files = _prune.walk_files(root)
        _prune.add_parent_inits(keep, files)  # a kept module's packages must stay importable
        remove = [rel for rel in files
                  if rel not in keep and not _prune.is_metadata(rel)
                  and not (rel.endswith(".pth") and "/" not in rel)]
        result.kept_files = len(files) - len(remove)
        result.removed_files = len(remove)
        result.removed_bytes = sum(files[r] for r in remove)
        result.removed = sorted(remove)
        _prune.remove_files(root, remove)
        second = _run(command, root, site_dir, None, cwd, timeout)
        if second.returncode != 0:
            raise TraceError(
                f"--keep-imported: {command!r} fails after pruning to the {result.kept_files} "
                f"files it touched (exit {second.returncode}); not writing the layer. Exercise "
                f"more of the code in the command, or --keep what it needs:\n{_tail(second.stdout)}",
                command=command, returncode=second.returncode, output=second.stdout)
    return result


def quote_command(argv: list[str]) -> str:
    """A shell command line from an argument list (for callers holding a list)."""
    return " ".join(shlex.quote(a) for a in argv)
