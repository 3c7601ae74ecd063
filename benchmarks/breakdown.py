"""Where a memory-mode cold start spends what having the tree unpacked does not (issue 9).

    python benchmarks/breakdown.py [--stack torch] [--level 3] [-n 3] [--first-native torch._C]

The stack is packed as coldstart.py packs it (the tree ``lambdaslim pack --strip`` ships, at
zstd ``--level``), and the layer laid out as in /opt under a folder on /dev/shm. Then, each
figure the median of N fresh ``python -S`` processes running coldstart.py's handler:

1. extraction: per distribution, the seconds ``status()`` gives for writing its native and
   data files (a cold process, empty extraction root);
2. code: the code parts decompressed (count, distinct parts, MB, seconds), in a cold and a
   warm process, with ``LAMBDASLIM_CODE_CACHE`` at its default and at 64MB;
3. audit events raised while the handler runs (each one is a call of memory mode's hook), and
   what one event costs through the hooks installed (``sys.audit`` in a loop: an upper bound,
   the probe's own counting hook included);
4. the import of lambdaslim's private filelock and zstandard, which the first extraction pays
   (timed in a fresh ``python -S`` that has imported nothing else);
5. with ``--first-native``: the Python a plain import of the unpacked tree runs before that
   extension module starts loading (self times of the modules finished before it, ``-X
   importtime``): what extracting in the background could overlap at most;
6. the tree's biggest native file, on one core: zstd decompression into a reused buffer,
   decompression with ``write`` into a file on /dev/shm, and decompression into an ``mmap`` of
   that file.
"""

from __future__ import annotations

import argparse
import io
import json
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _trees import layer_root, shipped  # noqa: E402
from coldstart import HANDLERS  # noqa: E402

PROBE = """\
import collections, json, sys, time
events = collections.Counter()
sys.addaudithook(lambda event, args: events.update((event,)))
import lambdaslim.bootstrap as bootstrap
from lambdaslim._runtime import _memory
code = {{"parts": 0, "bytes": 0, "seconds": 0.0}}
distinct = set()
_part = _memory.UnitFiles._part
def counted(self, number):
    if _memory.CACHE.get((self.unit.key, number)) is not None:
        return _part(self, number)
    started = time.perf_counter()
    data = _part(self, number)
    code["seconds"] += time.perf_counter() - started
    code["parts"] += 1
    code["bytes"] += len(data)
    distinct.add((self.unit.key, number))
    return data
_memory.UnitFiles._part = counted
before = sum(events.values())
{handler}
status = bootstrap.status()
handled = sum(events.values()) - before
started = time.perf_counter()
for _ in range(100000):  # every hook installed (memory mode's and the counter) sees each one
    sys.audit("lambdaslim.breakdown")
per_event = (time.perf_counter() - started) / 100000
print("@@" + json.dumps({{
    "per_event": per_event,
    "extract": {{n: s.get("seconds", 0.0) for n, s in status.items() if s.get("seconds")}},
    "code": dict(code, distinct=len(distinct)),
    "events": handled,
}}))
"""


def probe(stack: str, opt: Path, tmp: Path, cache: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LAMBDASLIM_"))}
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(opt / "python"), LAMBDASLIM_LAYER_ROOTS=str(opt),
               LAMBDASLIM_TMP=str(tmp), LAMBDASLIM_PYTHON="memory")
    if cache:
        env["LAMBDASLIM_CODE_CACHE"] = cache
    proc = subprocess.run([sys.executable, "-S", "-c", PROBE.format(handler=HANDLERS[stack])], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("@@"))[2:])


def importtime(code: str, pythonpath: str) -> list[tuple[int, int, str, int]]:
    """(self us, cumulative us, module, depth) per line of ``python -S -X importtime -c code``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LAMBDASLIM_"))}
    env.update(PYTHONPATH=pythonpath, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-S", "-X", "importtime", "-c", code], env=env,
                          capture_output=True, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        own, cumulative, name = line[len("import time:"):].split("|")
        rows.append((int(own), int(cumulative), name.strip(), (len(name) - len(name.lstrip())) // 2))
    return rows


DEPS = """\
import json, time
from lambdaslim._runtime import _deps
seconds = {}
for name in ("filelock", "zstandard"):
    started = time.perf_counter()
    getattr(_deps, name)()
    seconds[name] = time.perf_counter() - started
print(json.dumps(seconds))
"""


def deps_import(opt: Path) -> dict[str, float]:
    """Seconds a fresh ``python -S`` takes to import the layer's filelock, then zstandard."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LAMBDASLIM_"))}
    env.update(PYTHONPATH=str(opt / "python"), PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run([sys.executable, "-S", "-c", DEPS], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def before_native(site: Path, module: str, top: str) -> float:
    """ms of Python finished before ``module`` starts loading in ``import top`` (unpacked)."""
    rows = importtime(f"import {top}", str(site))
    at = next(i for i, r in enumerate(rows) if r[2] == module)
    first = at
    while first > 0 and rows[first - 1][3] > rows[at][3]:  # its own imports are listed before it
        first -= 1
    return sum(r[0] for r in rows[:first]) / 1000


def throughput(path: Path, level: int, scratch: Path) -> dict[str, float]:
    """GB/s on one core for ``path``: decompress only, decompress + write, decompress into mmap."""
    import zstandard

    data = path.read_bytes()
    frame = zstandard.ZstdCompressor(level=level).compress(data)
    out: dict[str, float] = {}
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    target = scratch / "throughput.bin"
    for way in ("decompress", "decompress + write", "decompress into mmap"):
        best = float("inf")
        for _ in range(3):
            target.unlink(missing_ok=True)
            started = time.perf_counter()
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(frame), read_size=1 << 20) as s:
                if way == "decompress":
                    while s.readinto(buf):
                        pass
                elif way == "decompress + write":
                    fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
                    while n := s.readinto(buf):
                        os.write(fd, view[:n])
                    os.close(fd)
                else:
                    fd = os.open(target, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
                    os.ftruncate(fd, len(data))
                    with mmap.mmap(fd, len(data)) as m:
                        mv, pos = memoryview(m), 0
                        while pos < len(data) and (n := s.readinto(mv[pos : pos + (1 << 20)])):
                            pos += n
                        mv.release()
                    os.close(fd)
            best = min(best, time.perf_counter() - started)
        out[way] = len(data) / best / 1e9
    target.unlink(missing_ok=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stack", choices=sorted(HANDLERS), default="torch")
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("-n", type=int, default=3, help="fresh processes per figure (median)")
    ap.add_argument("--first-native", default="torch._C",
                    help="extension module whose loading needs the native files ('' to skip)")
    args = ap.parse_args()
    site = shipped(args.stack)
    with tempfile.TemporaryDirectory(prefix="breakdown-", dir="/dev/shm") as w:
        work = Path(w)
        opt = layer_root(site, args.level, work)
        tmp = work / "tmp"
        print(f"{args.stack}: {site} packed at zstd level {args.level}; medians of {args.n} fresh processes")

        for cache in (None, "64MB"):
            cold, warm = [], []
            for _ in range(args.n):
                shutil.rmtree(tmp, ignore_errors=True)
                cold.append(probe(args.stack, opt, tmp, cache))
                warm.append(probe(args.stack, opt, tmp, cache))
            if cache is None:
                print("1. extraction (status(), cold):")
                names = sorted(cold[0]["extract"], key=lambda n: -cold[0]["extract"][n])
                for name in names:
                    print(f"   {name:<24} {statistics.median(c['extract'][name] for c in cold):.3f} s")
                total = statistics.median(sum(c["extract"].values()) for c in cold)
                print(f"   {'all':<24} {total:.3f} s")
            label = f"LAMBDASLIM_CODE_CACHE={cache or 'default (32MB)'}"
            for when, runs in (("cold", cold), ("warm", warm)):
                c = [r["code"] for r in runs]
                print(f"2. code parts, {when}, {label}: {int(statistics.median(x['parts'] for x in c))} "
                      f"decompressed ({int(statistics.median(x['distinct'] for x in c))} distinct), "
                      f"{statistics.median(x['bytes'] for x in c) / 1e6:.1f} MB, "
                      f"{statistics.median(x['seconds'] for x in c):.3f} s")
            if cache is None:
                events = statistics.median(c["events"] for c in cold)
                per_event = statistics.median(c["per_event"] for c in cold)
                print(f"3. audit events while the handler runs: {int(events)}, {per_event * 1e6:.2f} us each "
                      f"through every hook installed: {events * per_event * 1000:.1f} ms")

        deps = [deps_import(opt) for _ in range(args.n)]
        print("4. first extraction's imports of lambdaslim's private copies: "
              + ", ".join(f"{name} {statistics.median(d[name] for d in deps) * 1000:.1f} ms" for name in deps[0]))

        if args.first_native:
            top = args.first_native.split(".")[0]
            ms = statistics.median(before_native(site, args.first_native, top) for _ in range(args.n))
            print(f"5. Python run before {args.first_native} starts loading (unpacked `import {top}`): {ms:.1f} ms")

        biggest = max((p for p in site.rglob("*.so*") if p.is_file()), key=lambda p: p.stat().st_size,
                      default=None)
        if biggest is None:
            return 0
        rates = throughput(biggest, args.level, work)
        print(f"6. {biggest.relative_to(site)} ({biggest.stat().st_size / 1e6:.0f} MB), one core: "
              + ", ".join(f"{way} {gbs:.2f} GB/s" for way, gbs in rates.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
