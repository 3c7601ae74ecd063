"""``lambdaslim demo``: a packed scikit-learn layer, cold then warm, under the real runtime loop.

Steps: build a layer of numpy + scikit-learn with ``lambdaslim pack numpy scikit-learn``
(from the registry, pruned, compiled to bytecode, zstd; cached after the first run), unzip it
into a local /opt as Lambda does,
give the function a 512 MB /tmp (a real tmpfs in a private mount namespace when the machine
allows it, else the storage budget), and run an example handler that trains and uses a model
under ``awslambdaric`` behind the Runtime Interface Emulator (or our Runtime API server where
the emulator cannot be had). The runtime sees only the task folder, ``/opt/python`` and the
runtime client — not this machine's site-packages — as on Lambda. Then prints the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from typing import Any

from ._size import format_size, parse_size

REQUIREMENTS = ["numpy", "scikit-learn"]

APP = '''"""The demo's handler: train a model on synthetic data and use it, inside Lambda."""

import os

import lambdaslim.bootstrap  # noqa: F401  first: makes the packed layers in /opt importable
import lambdaslim
import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split


@lambdaslim.handler
def handler(event, context):
    X, y = make_classification(n_samples=int(event.get("samples", 2000)), n_features=20,
                               n_informative=8, random_state=int(event.get("seed", 0)))
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    model = RandomForestClassifier(n_estimators=40, random_state=0).fit(X_train, y_train)
    path = os.path.join(lambdaslim.scratch(), "model.joblib")  # removed after the invocation
    joblib.dump(model, path)
    return {
        "accuracy": round(float(model.score(X_test, y_test)), 4),
        "predictions": model.predict(X_test[:8]).tolist(),
        "model_bytes": os.path.getsize(path),
        "numpy": np.__version__,
    }
'''


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def run_demo(
    *,
    requirements: list[str] | None = None,
    tmp_size: int = 512_000_000,
    warm: int = 3,
    level: int | None = None,
    backend: str = "auto",
    fetch_rie: bool = True,
    workdir: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run the demo; return its figures (also what the table prints)."""
    from . import testing
    from .testing import _tmpfs
    from .testing import build_opt, built_layer
    from .build._pack import DEFAULT_LEVEL

    requirements = requirements or list(REQUIREMENTS)
    # Enter a private mount namespace while this process still has a single thread.
    namespace_problem = _tmpfs.enter_private_namespace()
    own_workdir = workdir is None
    work = workdir or tempfile.mkdtemp(prefix="lambdaslim-demo-")
    mounted = ""
    try:
        level = DEFAULT_LEVEL if level is None else level
        _say(quiet, f"[1/3] building the layer: lambdaslim pack {' '.join(requirements)} --level {level} "
                    "(from the registry; cached after the first run)")
        layer = built_layer(requirements, level=level, log=not quiet)
        opt = os.path.join(work, "opt")
        shutil.rmtree(opt, ignore_errors=True)
        build_opt([layer], opt)

        tmp = os.path.join(work, "tmp")
        os.makedirs(tmp, exist_ok=True)
        env = {"LAMBDASLIM_LAYER_ROOTS": opt, "LAMBDASLIM_TMP": os.path.join(tmp, "lambdaslim"), "TMPDIR": tmp}
        if namespace_problem is None:
            try:
                _tmpfs.mount_tmpfs(tmp, tmp_size)
                mounted = tmp
            except OSError as exc:
                namespace_problem = str(exc.strerror or exc)
        if not mounted:
            env["LAMBDASLIM_TMP_LIMIT"] = str(tmp_size)
        tmp_mode = "tmpfs" if mounted else f"budget-enforced ({namespace_problem})"

        task = os.path.join(work, "task")
        os.makedirs(task, exist_ok=True)
        with open(os.path.join(task, "app.py"), "w", encoding="utf-8") as fh:
            fh.write(APP)

        if backend in ("auto", "rie") and testing.find_rie() is None and fetch_rie:
            _say(quiet, "[2/3] fetching the Runtime Interface Emulator from the aws-sam-cli wheel (cached)")
            try:
                os.environ["LAMBDASLIM_RIE"] = testing.fetch_rie()
            except Exception as exc:  # no registry: our Runtime API server drives awslambdaric
                if backend == "rie":
                    raise
                _say(quiet, f"      could not fetch it ({exc}); using lambdaslim's Runtime API server")
        _say(quiet, "[3/3] invoking the handler: cold, then warm")
        runtime = testing.LocalRuntime(
            "app.handler", task, env=env, backend=backend, timeout=120, memory_mb=2048,
            python_path=[os.path.join(opt, "python")], log_path=os.path.join(work, "runtime.log"),
        )
        with runtime:
            calls = [runtime.invoke({"samples": 2000, "seed": i}) for i in range(1 + warm)]
            records = testing.invocation_records(runtime.logs())
            logs = runtime.logs()
        failed = [c for c in calls if not c.ok]
        if failed:
            raise testing.EmulatorError(f"the handler failed: {failed[0].error}\n{logs[-3000:]}")
        # A new process in the same sandbox (as after a timeout): trees are reused, not extracted.
        restart = testing.LocalRuntime(
            "app.handler", task, env=env, backend=backend, timeout=120, memory_mb=2048,
            python_path=[os.path.join(opt, "python")], log_path=os.path.join(work, "runtime2.log"),
        )
        with restart:
            again = restart.invoke({"samples": 2000})
            restart_records = testing.invocation_records(restart.logs())
        cold = records[0] if records else {}
        last = records[-1] if records else {}
        from .build._inspect import report

        totals = report(layer)["totals"]
        init_ms = cold.get("init_ms")
        extract_ms = cold.get("extract_ms", 0.0)
        start_ms = cold.get("bootstrap_at_ms")
        imports_ms = None
        if init_ms is not None and start_ms is not None:
            imports_ms = max(0.0, init_ms - start_ms - extract_ms)
        scratch_left = os.listdir(os.path.join(tmp, "lambdaslim", "scratch")) if os.path.isdir(
            os.path.join(tmp, "lambdaslim", "scratch")) else []
        figures: dict[str, Any] = {
            "requirements": requirements,
            "runtime": runtime.backend,
            "tmp_mode": tmp_mode,
            "layer_zip_bytes": os.path.getsize(layer),
            "layer_unpacked_bytes": totals["unpacked_bytes"],
            "layer_files": totals["files"],
            "level": level,
            "python": sys.version.split()[0],
            "runtime_start_ms": start_ms,
            "extract_ms": extract_ms,
            "imports_ms": imports_ms,
            "init_ms": init_ms,
            "cold_response_ms": calls[0].seconds * 1000,
            "cold_duration_ms": cold.get("duration_ms"),
            "warm_response_ms": statistics.median(c.seconds * 1000 for c in calls[1:]) if warm else None,
            "warm_duration_ms": statistics.median(r["duration_ms"] for r in records[1:]) if len(records) > 1 else None,
            "restart_response_ms": again.seconds * 1000,
            "restart_extract_ms": (restart_records[0].get("extract_ms") if restart_records else None),
            "tmp_used_bytes": last.get("tmp", {}).get("used"),
            "tmp_limit_bytes": tmp_size,
            "cold_start_flags": [r.get("cold_start") for r in records],
            "accuracy": calls[0].json()["accuracy"],
            "scratch_left": scratch_left,
        }
        return figures
    finally:
        if mounted:
            try:
                _tmpfs.unmount(mounted)
            except OSError:
                pass
        if own_workdir:
            shutil.rmtree(work, ignore_errors=True)


def render(f: dict[str, Any]) -> str:
    """The short table the demo prints."""
    rows = [
        ("layer zip (lambdaslim pack)", f"{format_size(f['layer_zip_bytes'])}"
         f"   holds {format_size(f['layer_unpacked_bytes'])} in {f['layer_files']} files, zstd level {f['level']}"),
        ("runtime start (python + awslambdaric)", _ms(f["runtime_start_ms"])),
        ("extraction into /tmp (cold)", _ms(f["extract_ms"])),
        ("imports (numpy, scikit-learn)", _ms(f["imports_ms"])),
        ("init total (process start -> first call)", _ms(f["init_ms"])),
        ("first response (cold, round trip)", f"{_ms(f['cold_response_ms'])}   handler {_ms(f['cold_duration_ms'])}"),
        ("warm response (median, round trip)", f"{_ms(f['warm_response_ms'])}   handler {_ms(f['warm_duration_ms'])}"),
        ("new process, same /tmp (trees reused)", f"{_ms(f['restart_response_ms'])}   extraction "
         f"{_ms(f['restart_extract_ms'])}"),
        ("/tmp used", f"{format_size(f['tmp_used_bytes'] or 0)} of {format_size(f['tmp_limit_bytes'])}"
         f"   scratch left: {len(f['scratch_left'])}"),
    ]
    width = max(len(r[0]) for r in rows)
    head = (f"lambdaslim demo: {' + '.join(f['requirements'])} on Python {f['python']}, "
            f"runtime loop: awslambdaric via {'the Runtime Interface Emulator' if f['runtime'] == 'rie' else 'lambdaslim Runtime API'}, "
            f"/tmp: {f['tmp_mode']}")
    lines = [head, ""]
    lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
    flags = ", ".join("cold" if c else "warm" for c in f["cold_start_flags"])
    lines += ["", f"  invocations: {flags}; model accuracy {f['accuracy']}"]
    return "\n".join(lines)


def _cmd_demo(args: argparse.Namespace) -> int:
    figures = run_demo(
        requirements=args.requirements or None, tmp_size=args.tmp, warm=args.warm, level=args.level,
        backend=args.backend, fetch_rie=not args.no_fetch, workdir=args.workdir, quiet=args.json,
    )
    if args.json:
        import json

        print(json.dumps(figures, indent=2, sort_keys=True))
    else:
        print(render(figures))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``lambdaslim demo`` to the command line."""
    p = sub.add_parser("demo", help="pack numpy + scikit-learn, run a handler cold then warm under the Lambda runtime loop")
    p.add_argument("--requirements", nargs="*", metavar="REQ", help=f"what to pack (default: {' '.join(REQUIREMENTS)})")
    p.add_argument("--tmp", type=parse_size, default=512_000_000, help="the size of /tmp (default 512MB)")
    p.add_argument("--warm", type=int, default=3, help="warm invocations after the cold one (default 3)")
    p.add_argument("--level", type=int, default=None, help="zstd level for the layer (default: lambdaslim pack's)")
    p.add_argument("--backend", choices=("auto", "rie", "api"), default="auto",
                   help="rie: the Runtime Interface Emulator; api: lambdaslim's Runtime API server")
    p.add_argument("--no-fetch", action="store_true", help="do not download the emulator when missing")
    p.add_argument("--workdir", help="keep the /opt, task and logs here instead of a temporary folder")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=_cmd_demo)
