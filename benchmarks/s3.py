"""S3 read speed and warm-start caching against a real S3 server on 127.0.0.1 (issue 5).

    python benchmarks/s3.py [--mb 200] [--repeat 3] [--backend auto|seaweedfs|moto]

One server (SeaweedFS ``weed mini``, else moto), one object of ``--mb`` MB, one run:

- throughput of ``stream_get`` (parallel ranged GETs pinned to the ETag) against the baseline
  ``client.get_object(...)["Body"].read()``; target ratio >= 1.5. Measured twice, runs of the
  two interleaved: straight over loopback (there one stream is bound by the CPU of client and
  server, not by the network), and through a local proxy that caps each connection at
  ``--conn-mbps`` MB/s, as a real S3 endpoint serves a single connection far slower than
  loopback (AWS's performance guidelines suggest ~85-90 MB/s per connection);
- a warm read from the memory cache within ``max_age`` (no request) against a fresh
  download; target ratio >= 50; the same from the disk ("tmp") cache;
- a revalidated read (``IfNoneMatch`` -> 304): the requests it sends (target: one) and its time.

Each figure is the median of ``--repeat`` runs; every run reads the whole object and checks
its bytes against the uploaded ones (outside the timed part).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from lambdaslim import s3  # noqa: E402
from lambdaslim.testing._s3server import S3Server  # noqa: E402
from lambdaslim.testing._proxy import CuttingProxy  # noqa: E402


def median_time(fn: Callable[[], Any], repeat: int, check: Callable[[Any], None]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        check(result)
        del result
    return statistics.median(times)


def process_cpu(pid: int | None) -> float:
    """CPU seconds used so far by this process (pid None) or by the server process."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def interleaved(first: Callable[[], Any], second: Callable[[], Any], repeat: int,
                check: Callable[[Any], None], server_pid: int | None) -> list[tuple[float, float, float]]:
    """Median (wall, client CPU, server CPU) seconds of two readers, runs alternating so that
    load drift on a shared machine hits both alike."""
    runs: tuple[list[tuple[float, float, float]], ...] = ([], [])
    for _ in range(repeat):
        for fn, out in ((first, runs[0]), (second, runs[1])):
            cpu0, server0 = process_cpu(None), process_cpu(server_pid)
            start = time.perf_counter()
            result = fn()
            wall = time.perf_counter() - start
            out.append((wall, process_cpu(None) - cpu0, process_cpu(server_pid) - server0))
            check(result)
            del result
    return [tuple(statistics.median(r[i] for r in out) for i in range(3)) for out in runs]  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=200, help="object size in MB (10**6 bytes)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", default="auto", choices=["auto", "seaweedfs", "moto"])
    parser.add_argument("--conn-mbps", type=float, default=85.0,
                        help="per-connection cap of the proxy run, MB/s (0: skip that run)")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="lambdaslim-bench-s3-")
    os.environ["LAMBDASLIM_TMP"] = os.path.join(root, "tmp")  # the disk cache's root
    os.environ["LAMBDASLIM_LAYER_ROOTS"] = os.path.join(root, "no-layers")
    os.environ.pop("LAMBDASLIM_TMP_LIMIT", None)
    size = args.mb * 1_000_000
    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()

    def check(result: Any) -> None:
        view = result.getbuffer() if hasattr(result, "getbuffer") else result
        if len(view) != size or hashlib.sha256(view).hexdigest() != digest:
            raise SystemExit("wrong bytes read")

    with S3Server(backend=args.backend, workdir=os.path.join(root, "server")) as server:
        client = server.client()
        key = "bench/object.bin"
        start = time.perf_counter()
        s3.stream_put(server.bucket, data, key, client=client)
        put_s = time.perf_counter() - start
        print(f"server: {server.backend} at {server.endpoint_url}; object {size / 1e6:.0f} MB; "
              f"median of {args.repeat} runs")
        print(f"stream_put (multipart):                 {put_s:8.3f} s  {size / put_s / 1e6:8.1f} MB/s")

        def compare(label: str, reader: Any) -> float:
            def baseline() -> bytes:
                return bytes(reader.get_object(Bucket=server.bucket, Key=key)["Body"].read())

            def parallel() -> Any:
                return s3.stream_get(server.bucket, key, client=reader, cache=None)

            (base_s, base_cpu, base_srv), (fresh_s, fresh_cpu, fresh_srv) = interleaved(
                baseline, parallel, args.repeat, check, server.pid)
            print(f"{label}:")
            print(f"  get_object()['Body'].read() (baseline): {base_s:8.3f} s  {size / base_s / 1e6:8.1f} MB/s"
                  f"  (CPU s: client {base_cpu:.2f}, server {base_srv:.2f})")
            print(f"  stream_get, no cache:                   {fresh_s:8.3f} s  {size / fresh_s / 1e6:8.1f} MB/s"
                  f"  (CPU s: client {fresh_cpu:.2f}, server {fresh_srv:.2f})")
            print(f"  ratio stream_get / baseline throughput: {base_s / fresh_s:.2f}x (target >= 1.5)")
            return fresh_s

        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        fresh_s = compare("loopback, direct", client)
        if args.conn_mbps > 0:
            with CuttingProxy.for_url(server.endpoint_url, rate=args.conn_mbps * 1e6) as proxy:
                compare(f"through a proxy capping each connection at {args.conn_mbps:g} MB/s",
                        server.client(endpoint_url=proxy.url))

        requests: list[str] = []
        client.meta.events.register("before-send.s3", lambda request, **_: requests.append(request.method))

        s3.clear_cache()
        check(s3.stream_get(server.bucket, key, client=client, cache="memory", max_age=3600))
        requests.clear()
        warm_s = median_time(lambda: s3.stream_get(server.bucket, key, client=client, max_age=3600),
                             args.repeat, check)
        warm_requests = len(requests)
        print(f"warm read, memory cache within max_age: {warm_s * 1e3:8.3f} ms  ({warm_requests} requests)")
        print(f"  ratio fresh download (loopback) / warm read: {fresh_s / warm_s:.0f}x (target >= 50)")

        check(s3.stream_get(server.bucket, key, client=client, cache="tmp", max_age=3600))
        tmp_s = median_time(lambda: s3.stream_get(server.bucket, key, client=client, cache="tmp", max_age=3600),
                            args.repeat, check)
        print(f"warm read, disk cache within max_age:   {tmp_s * 1e3:8.3f} ms  "
              f"(ratio fresh / warm {fresh_s / tmp_s:.1f}x)")

        requests.clear()
        reval_s = median_time(lambda: s3.stream_get(server.bucket, key, client=client), args.repeat, check)
        per_read = len(requests) / args.repeat
        print(f"revalidated read (304), memory cache:   {reval_s * 1e3:8.3f} ms  "
              f"({per_read:.0f} request per read; ratio fresh / revalidated {fresh_s / reval_s:.0f}x)")
        info = s3.cache_info()
        print(f"cache_info: memory {info['memory']['entries']} entries {info['memory']['bytes'] / 1e6:.0f} MB, "
              f"tmp {info['tmp']['entries']} entries {info['tmp']['bytes'] / 1e6:.0f} MB")
        s3.clear_cache()
    import shutil

    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
