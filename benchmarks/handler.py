"""Benchmark ``@lambdaslim.handler``: warm-call overhead, and a cold-start breakdown.

    python benchmarks/handler.py            # both parts
    python benchmarks/handler.py --overhead # only the decorator's warm overhead (no network)

1. Warm overhead: a decorated no-op handler against the same function undecorated, in one
   process, per call (median of repeats). Configurations: log line off; on with no logging
   handler (records dropped, as with an unconfigured root logger); on with a handler writing
   to /dev/null (as under the Lambda runtime, which attaches one); with EMF metrics too.
2. Cold start under the runtime loop (``awslambdaric`` behind the Runtime Interface Emulator
   when found, else our Runtime API server), isolated as on Lambda: a numpy handler fed from
   a layer built by ``lambdaslim pack numpy`` (pruned, bytecode, zstd), against the same
   handler importing numpy from a plain folder with bytecode (what an ordinary unzipped layer
   gives). Each cold start uses a fresh /tmp and a fresh copy of the folder. Prints the breakdown the handler's log line reports, and the ratios.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import lambdaslim
from lambdaslim import testing
from lambdaslim.testing._localenv import LambdaContext
from lambdaslim._size import format_size


def _per_call(fn: Any, ctx: Any, calls: int, repeats: int) -> float:
    """Seconds per call: the fastest of ``repeats`` loops of ``calls`` calls (on a shared
    machine the fastest loop is the one least disturbed by other processes)."""
    event: dict[str, Any] = {"k": 1}
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn(event, ctx)
        samples.append((time.perf_counter() - start) / calls)
    return min(samples)


def overhead(calls: int = 10_000, repeats: int = 15) -> dict[str, float]:
    root = tempfile.mkdtemp(prefix="lambdaslim-bench-")
    saved = {k: os.environ.get(k) for k in ("LAMBDASLIM_TMP", "LAMBDASLIM_LAYER_ROOTS")}
    os.environ["LAMBDASLIM_TMP"] = os.environ["LAMBDASLIM_LAYER_ROOTS"] = root
    try:
        return _overhead(calls, repeats)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


def _overhead(calls: int, repeats: int) -> dict[str, float]:

    def bare(event: Any, context: Any) -> dict[str, int]:
        return {"ok": 1}

    ctx = LambdaContext(timeout=900)
    logger = logging.getLogger("lambdaslim.handler")
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives for the benchmark
    sink = logging.StreamHandler(devnull)
    configs: dict[str, Any] = {
        "log line off": lambdaslim.handler(log=False)(bare),
        "log line on, no logging handler": lambdaslim.handler(bare),
        "log line on, handler to /dev/null": lambdaslim.handler(bare),
        "log line + EMF metrics to /dev/null": lambdaslim.handler(metrics=True)(bare),
    }
    stdout, sys.stdout = sys.stdout, devnull
    try:
        for fn in configs.values():  # the first call of the process is the cold one
            fn({}, ctx)
    finally:
        sys.stdout = stdout
    base = _per_call(bare, ctx, calls, repeats)
    out: dict[str, float] = {"bare call (µs)": base * 1e6}
    for name, fn in configs.items():
        stdout = sys.stdout
        if "handler" in name or "EMF" in name:
            logger.addHandler(sink)
        if "EMF" in name:
            sys.stdout = devnull
        logger.propagate = False
        try:
            per = _per_call(fn, ctx, calls, repeats)
        finally:
            logger.removeHandler(sink)
            logger.propagate = True
            sys.stdout = stdout
        out[name] = (per - base) * 1e6
    devnull.close()
    return out


APP = '''
import lambdaslim.bootstrap
import lambdaslim
import numpy as np

@lambdaslim.handler
def handler(event, context):
    return {"sum": float(np.arange(1000).sum())}
'''

PLAIN_APP = '''
import time
_t0 = time.monotonic()
import numpy as np
IMPORT_MS = (time.monotonic() - _t0) * 1000

def handler(event, context):
    return {"sum": float(np.arange(1000).sum()), "import_ms": IMPORT_MS}
'''


def _cold(task: str, python_path: list[str], env: dict[str, str], warm: int) -> tuple[Any, list[Any], list[dict[str, Any]], str]:
    with testing.LocalRuntime("app.handler", task, env=env, python_path=python_path, timeout=120) as rt:
        cold = rt.invoke({})
        warms = [rt.invoke({}) for _ in range(warm)]
        if not cold.ok:
            raise SystemExit(f"cold invocation failed: {cold.error}\n{rt.logs()[-2000:]}")
        return cold, warms, testing.invocation_records(rt.logs()), rt.backend


def cold_start(runs: int = 3, warm: int = 5, level: int | None = None) -> dict[str, Any]:
    import compileall
    import py_compile

    from lambdaslim.testing import build_opt, built_layer, pip_site
    from lambdaslim.build._pack import DEFAULT_LEVEL

    level = DEFAULT_LEVEL if level is None else level
    site = pip_site(["numpy"])
    layer = built_layer(["numpy"], level=level)  # lambdaslim pack numpy: pruned, bytecode, zstd
    work = tempfile.mkdtemp(prefix="lambdaslim-bench-")
    try:
        opt = build_opt([layer], os.path.join(work, "opt"))
        task = os.path.join(work, "task")
        os.makedirs(task)
        with open(os.path.join(task, "app.py"), "w") as fh:
            fh.write(APP)
        plain_task = os.path.join(work, "plain-task")
        os.makedirs(plain_task)
        with open(os.path.join(plain_task, "app.py"), "w") as fh:
            fh.write(PLAIN_APP)
        packed: dict[str, list[float]] = {k: [] for k in ("cold", "warm", "init", "start", "extract", "imports", "handler_warm")}
        plain: dict[str, list[float]] = {"cold": [], "warm": [], "import": []}
        backend = ""
        for i in range(runs):
            tmp = os.path.join(work, f"tmp{i}")
            env = {"LAMBDASLIM_LAYER_ROOTS": opt, "LAMBDASLIM_TMP": tmp}
            cold, warms, records, backend = _cold(task, [os.path.join(opt, "python")], env, warm)
            rec = records[0]
            packed["cold"].append(cold.seconds * 1000)
            packed["warm"].append(statistics.median(w.seconds * 1000 for w in warms))
            packed["handler_warm"].append(statistics.median(r["duration_ms"] for r in records[1:]))
            packed["init"].append(rec["init_ms"])
            packed["start"].append(rec.get("bootstrap_at_ms", 0.0))
            packed["extract"].append(rec["extract_ms"])
            packed["imports"].append(rec["init_ms"] - rec.get("bootstrap_at_ms", 0.0) - rec["extract_ms"])
            fresh_site = os.path.join(work, f"site{i}")
            shutil.copytree(site, fresh_site)  # an ordinary layer: the tree with its bytecode
            compileall.compile_dir(fresh_site, quiet=1, workers=0,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            cold, warms, _, _ = _cold(plain_task, [fresh_site], {"LAMBDASLIM_TMP": tmp}, warm)
            plain["cold"].append(cold.seconds * 1000)
            plain["warm"].append(statistics.median(w.seconds * 1000 for w in warms))
            plain["import"].append(cold.json()["import_ms"])
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(fresh_site, ignore_errors=True)
        med = {f"packed {k}": statistics.median(v) for k, v in packed.items()}
        med.update({f"plain {k}": statistics.median(v) for k, v in plain.items()})
        med["backend"] = backend
        med["layer_zip_bytes"] = os.path.getsize(layer)
        med["site_bytes"] = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(site) for f in fs)
        med["level"] = level
        return med
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overhead", action="store_true", help="only the warm overhead")
    parser.add_argument("--runs", type=int, default=3, help="cold starts per variant (median)")
    parser.add_argument("--level", type=int, default=None, help="zstd level of the packed layer")
    args = parser.parse_args()

    print("== @lambdaslim.handler warm overhead per call (fastest of 15 loops of 10000 calls)")
    for name, value in overhead().items():
        print(f"  {name:40s} {value:8.2f} µs")
    if args.overhead:
        return
    if testing.find_rie() is None:
        try:
            os.environ["LAMBDASLIM_RIE"] = testing.fetch_rie()
        except Exception as exc:  # noqa: BLE001 - fall back to our Runtime API server
            print(f"(no emulator: {exc}; using lambdaslim's Runtime API server)")
    r = cold_start(runs=args.runs, level=args.level)
    print(f"\n== cold start of a numpy handler under the runtime loop ({r['backend']}), median of {args.runs}")
    print(f"  layer: {format_size(r['layer_zip_bytes'])} zip (zstd level {r['level']}) for "
          f"{format_size(r['site_bytes'])} of numpy")
    print("  lambdaslim packed layer:")
    print(f"    runtime start (python + awslambdaric)  {r['packed start']:8.1f} ms")
    print(f"    extraction into /tmp                   {r['packed extract']:8.1f} ms")
    print(f"    imports (excluding extraction)         {r['packed imports']:8.1f} ms")
    print(f"    init total                             {r['packed init']:8.1f} ms")
    print(f"    cold round trip                        {r['packed cold']:8.1f} ms")
    print(f"    warm round trip                        {r['packed warm']:8.1f} ms   (handler {r['packed handler_warm']:.2f} ms)")
    print("  plain folder with bytecode (an ordinary unzipped layer):")
    print(f"    import numpy                           {r['plain import']:8.1f} ms")
    print(f"    cold round trip                        {r['plain cold']:8.1f} ms")
    print(f"    warm round trip                        {r['plain warm']:8.1f} ms")
    print(f"  ratio cold packed / plain: {r['packed cold'] / r['plain cold']:.2f}; "
          f"extra cold cost {r['packed cold'] - r['plain cold']:.0f} ms for a "
          f"{r['site_bytes'] / max(1, r['layer_zip_bytes']):.1f}x smaller layer; "
          f"warm ratio {r['packed warm'] / r['plain warm']:.2f}")


if __name__ == "__main__":
    main()
