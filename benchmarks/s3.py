"""S3 reads against peers, with peak memory, and fetch_dir against boto3, on a real S3 server.

    python benchmarks/s3.py [--mb 200] [--repeat 3] [--conn-mbps 85] [--objects 200]
                            [--install-peers DIR] [--backend auto|seaweedfs|moto]

One server (SeaweedFS ``weed mini``, else moto) on 127.0.0.1, one object of ``--mb`` MB, one run.

1. Whole-object reads into memory. Every case runs in a fresh subprocess (imports and client
   made before the clock starts, one tiny warm-up read), which reports the read's wall time
   and its peak RSS growth (``VmHWM`` reset through ``/proc/self/clear_refs`` just before the
   read) as a multiple of the object size. Cases: ``get_object()["Body"].read()``,
   s3transfer's ``download_fileobj`` into a BytesIO (boto3's default 10 threads), smart_open
   and s3fs (``cat_file``) where importable, and ``stream_get(cache=None).read()`` with its
   automatic plan and at s3transfer's 10 connections. Each is measured straight over
   loopback (CPU-bound: there one stream is limited by client and server CPU) and through a
   local proxy capping each connection at ``--conn-mbps`` MB/s, as S3 serves one connection.
   Targets: loopback >= 0.8x one plain GET and >= 1.0x s3transfer; capped >= 1.0x
   s3transfer at the same connection count; RSS <= 1.15x the object (+ a few MB).
2. ``stream_get(cache="memory")``: peak RSS of the first read (cache and caller share the
   bytes), and a warm read within ``max_age`` against a download (target >= 50x); a warm
   read from the disk cache; a revalidated read (304, one request).
3. ``fetch_dir`` on a prefix of ``--objects`` objects of mixed sizes against code written with
   boto3 (``list_objects_v2`` + ``download_file`` per object, one at a time and on 10
   threads), cold, then ``fetch_dir`` warm (within ``max_age``) and revalidated (one listing).

``--install-peers DIR`` pip-installs smart_open and s3fs into DIR/<name> (s3fs brings its own
botocore through aiobotocore, so each peer gets a folder of its own and its own subprocess).
Medians of ``--repeat`` runs, cases interleaved so load drift on a shared machine hits all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parent.parent / "src")
sys.path.insert(0, SRC)

from lambdaslim import s3  # noqa: E402
from lambdaslim.testing._proxy import CuttingProxy  # noqa: E402
from lambdaslim.testing._s3server import S3Server  # noqa: E402

# The code each case runs in its subprocess: READ(bucket, key) returns the object's bytes.
_SETUP = {
    "boto3 get_object().read()": "READ = lambda b, k: CLIENT.get_object(Bucket=b, Key=k)['Body'].read()",
    "s3transfer download_fileobj": (
        "import io\n"
        "def READ(b, k):\n"
        "    buf = io.BytesIO(); CLIENT.download_fileobj(b, k, buf); return buf.getbuffer()"),
    "smart_open": (
        "import smart_open\n"
        "READ = lambda b, k: smart_open.open(f's3://{b}/{k}', 'rb', transport_params={'client': CLIENT}).read()"),
    "s3fs cat_file": (
        "import s3fs\n"
        "FS = s3fs.S3FileSystem(endpoint_url=ENDPOINT, default_block_size=8 << 20)\n"
        "READ = lambda b, k: FS.cat_file(f'{b}/{k}')"),
    "stream_get (auto plan)": "READ = lambda b, k: s3.stream_get(b, k, client=CLIENT, cache=None).read()",
    "stream_get (10 connections)": (
        "READ = lambda b, k: s3.stream_get(b, k, client=CLIENT, cache=None, max_concurrency=10).read()"),
    "stream_get cache=memory": "READ = lambda b, k: s3.stream_get(b, k, client=CLIENT, cache='memory').read()",
}
_PEER_DIRS = {"smart_open": "smart_open", "s3fs cat_file": "s3fs"}

_CHILD = """
import hashlib, json, sys, time
endpoint, bucket, key, digest, setup = sys.argv[1:6]
import boto3
from botocore.config import Config
from lambdaslim import s3
ENDPOINT = endpoint
CLIENT = boto3.session.Session().client("s3", endpoint_url=endpoint,
                                        config=Config(max_pool_connections=32, s3={"addressing_style": "path"}))
exec(setup)
READ(bucket, "tiny")  # imports, connections, credentials: outside the clock
def status(field):
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) * 1024 for l in fh if l.startswith(field))
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
start = time.perf_counter()
data = READ(bucket, key)
wall = time.perf_counter() - start
grew = status("VmHWM") - base
ok = hashlib.sha256(data).hexdigest() == digest
print(json.dumps({"wall": wall, "grew": grew, "ok": ok}))
"""


def run_case(name: str, endpoint: str, bucket: str, key: str, digest: str, env: dict[str, str],
             peers: Path | None) -> dict[str, Any] | None:
    paths = [SRC]
    if name in _PEER_DIRS and peers is not None and (peers / _PEER_DIRS[name]).is_dir():
        paths.insert(0, str(peers / _PEER_DIRS[name]))
    child_env = dict(env, PYTHONPATH=os.pathsep.join(paths))
    out = subprocess.run([sys.executable, "-c", _CHILD, endpoint, bucket, key, digest, _SETUP[name]],
                         capture_output=True, text=True, env=child_env, timeout=600)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  ({name}: unavailable: {last})")
        return None
    result: dict[str, Any] = json.loads(out.stdout)
    if not result["ok"]:
        raise SystemExit(f"{name} read wrong bytes")
    return result


def read_peers(label: str, endpoint: str, names: list[str], server: Any, key: str, digest: str,
               size: int, repeat: int, peers: Path | None) -> dict[str, float]:
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for _ in range(repeat):
        for name in list(runs):
            got = run_case(name, endpoint, server.bucket, key, digest, server.env(), peers)
            if got is None:
                del runs[name]
            else:
                runs[name].append(got)
    print(f"{label} (median of {repeat}, each in a fresh process):")
    walls = {}
    for name, results in runs.items():
        wall = statistics.median(r["wall"] for r in results)
        grew = statistics.median(r["grew"] for r in results)
        walls[name] = wall
        print(f"  {name:30s} {wall:7.3f} s {size / wall / 1e6:7.0f} MB/s   peak RSS +{grew / 1e6:6.0f} MB "
              f"= {grew / size:.2f}x the object")
    return walls


def ratio(walls: dict[str, float], ours: str, peer: str, target: float) -> None:
    if ours in walls and peer in walls:
        print(f"  ratio {ours} vs {peer}: {walls[peer] / walls[ours]:.2f}x (target >= {target})")


def mixed_sizes(count: int, rng: random.Random) -> list[int]:
    """Like a model folder: many small files (configs, shards), some MBs, a few big ones."""
    sizes = []
    for i in range(count):
        kind = i % 20
        if kind == 0:
            sizes.append(rng.randint(8_000_000, 24_000_000))
        elif kind < 5:
            sizes.append(rng.randint(500_000, 3_000_000))
        else:
            sizes.append(rng.randint(100, 200_000))
    return sizes


def bench_dirs(server: Any, client: Any, count: int, repeat: int, root: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(7)
    prefix = "bench/dir/"
    sizes = mixed_sizes(count, rng)
    for i, size in enumerate(sizes):
        client.put_object(Bucket=server.bucket, Key=f"{prefix}{i // 50}/f{i:04d}.bin", Body=rng.randbytes(size))
    total = sum(sizes)

    def boto3_sync(threads: int) -> None:
        dest = tempfile.mkdtemp(dir=root)
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=server.bucket, Prefix=prefix) for o in page.get("Contents", ())]

        def one(key: str) -> None:
            path = os.path.join(dest, key[len(prefix):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            client.download_file(server.bucket, key, path)

        if threads == 1:
            for key in keys:
                one(key)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, keys))
        shutil.rmtree(dest)

    def ours() -> None:
        os.environ["LAMBDASLIM_TMP"] = tempfile.mkdtemp(dir=root)  # a cold environment each time
        s3.fetch_dir(f"s3://{server.bucket}/{prefix}", client=client)

    cases = {"boto3 list + download_file, 1 thread": lambda: boto3_sync(1),
             "boto3 list + download_file, 10 threads": lambda: boto3_sync(10),
             "fetch_dir (cold)": ours}
    times: dict[str, list[float]] = {n: [] for n in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    print(f"folder of {count} objects, {total / 1e6:.0f} MB (median of {repeat}):")
    med = {n: statistics.median(t) for n, t in times.items()}
    for name, wall in med.items():
        print(f"  {name:40s} {wall:7.3f} s {total / wall / 1e6:7.0f} MB/s")
    for name in list(cases)[:2]:
        print(f"  ratio fetch_dir vs {name}: {med[name] / med['fetch_dir (cold)']:.2f}x")
    requests: list[str] = []
    client.meta.events.register("before-send.s3", lambda request, **_: requests.append(request.method))
    start = time.perf_counter()
    s3.fetch_dir(f"s3://{server.bucket}/{prefix}", client=client, max_age=300)
    warm = time.perf_counter() - start
    print(f"  fetch_dir warm, within max_age:   {warm * 1e3:8.2f} ms, {len(requests)} requests")
    requests.clear()
    start = time.perf_counter()
    s3.fetch_dir(f"s3://{server.bucket}/{prefix}", client=client, max_age=0)
    reval = time.perf_counter() - start
    print(f"  fetch_dir revalidated, unchanged: {reval * 1e3:8.2f} ms, {len(requests)} requests (listing)")


def install_peers(folder: Path) -> None:
    for name, spec in (("smart_open", ["--no-deps", "smart_open", "wrapt"]), ("s3fs", ["s3fs"])):
        if not (folder / name).is_dir():
            out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                  "--target", str(folder / name), *spec], capture_output=True, text=True)
            if out.returncode != 0:  # the case then reports itself unavailable
                print(f"(could not install {name}: {out.stderr.strip().splitlines()[-1:]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=200, help="object size in MB (10**6 bytes)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", default="auto", choices=["auto", "seaweedfs", "moto"])
    parser.add_argument("--conn-mbps", type=float, default=85.0,
                        help="per-connection cap of the proxy run, MB/s (0: skip that run)")
    parser.add_argument("--objects", type=int, default=200, help="objects in the fetch_dir prefix (0: skip)")
    parser.add_argument("--install-peers", type=Path, default=None, metavar="DIR",
                        help="pip-install smart_open and s3fs into DIR (each in a folder of its own)")
    args = parser.parse_args()
    if args.install_peers is not None:
        install_peers(args.install_peers)

    root = tempfile.mkdtemp(prefix="lambdaslim-bench-s3-")
    os.environ["LAMBDASLIM_TMP"] = os.path.join(root, "tmp")
    os.environ["LAMBDASLIM_LAYER_ROOTS"] = os.path.join(root, "no-layers")
    os.environ.pop("LAMBDASLIM_TMP_LIMIT", None)
    size = args.mb * 1_000_000
    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()
    try:
        with S3Server(backend=args.backend, workdir=os.path.join(root, "server")) as server:
            client = server.client()
            key = "bench/object.bin"
            s3.stream_put(server.bucket, data, key, client=client)
            client.put_object(Bucket=server.bucket, Key="tiny", Body=b"tiny")
            print(f"server: {server.backend}; object {size / 1e6:.0f} MB; machine: {len(os.sched_getaffinity(0))} "
                  f"CPUs, load average {os.getloadavg()[0]:.1f}")
            names = [n for n in _SETUP if n != "stream_get cache=memory"]
            walls = read_peers("loopback, direct", server.endpoint_url, names, server, key, digest, size,
                               args.repeat, args.install_peers)
            ratio(walls, "stream_get (auto plan)", "boto3 get_object().read()", 0.8)
            ratio(walls, "stream_get (auto plan)", "s3transfer download_fileobj", 1.0)
            if args.conn_mbps > 0:
                with CuttingProxy.for_url(server.endpoint_url, rate=args.conn_mbps * 1e6) as proxy:
                    capped = read_peers(f"each connection capped at {args.conn_mbps:g} MB/s", proxy.url,
                                        [n for n in names if n != "boto3 get_object().read()"] +
                                        ["boto3 get_object().read()"] * (args.mb <= 100),
                                        server, key, digest, size, args.repeat, args.install_peers)
                ratio(capped, "stream_get (10 connections)", "s3transfer download_fileobj", 1.0)
                ratio(capped, "stream_get (auto plan)", "s3transfer download_fileobj", 1.0)
            read_peers("cache='memory' (first read: download into the cache)", server.endpoint_url,
                       ["stream_get cache=memory"], server, key, digest, size, 1, None)

            s3.clear_cache()
            start = time.perf_counter()
            s3.stream_get(server.bucket, key, client=client, max_age=3600).read()
            download = time.perf_counter() - start
            warm = []
            for _ in range(max(3, args.repeat)):
                start = time.perf_counter()
                s3.stream_get(server.bucket, key, client=client, max_age=3600).read()
                warm.append(time.perf_counter() - start)
            print(f"warm full read(), memory cache within max_age: {statistics.median(warm) * 1e3:.3f} ms "
                  f"vs download {download:.3f} s: {download / statistics.median(warm):.0f}x (target >= 50)")
            s3.stream_get(server.bucket, key, client=client, cache="tmp", max_age=3600)
            tmp = []
            for _ in range(max(3, args.repeat)):
                start = time.perf_counter()
                s3.stream_get(server.bucket, key, client=client, cache="tmp", max_age=3600).read()
                tmp.append(time.perf_counter() - start)
            print(f"warm full read(), disk cache within max_age: {statistics.median(tmp) * 1e3:.1f} ms "
                  f"(one copy from the page cache)")
            requests: list[str] = []
            client.meta.events.register("before-send.s3", lambda request, **_: requests.append(request.method))
            start = time.perf_counter()
            s3.stream_get(server.bucket, key, client=client).read()
            print(f"revalidated read (304), memory cache: {(time.perf_counter() - start) * 1e3:.1f} ms, "
                  f"{len(requests)} request")
            s3.clear_cache()
            if args.objects:
                bench_dirs(server, client, args.objects, args.repeat, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
