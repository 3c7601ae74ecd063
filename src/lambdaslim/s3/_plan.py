"""How a download is cut: connections and part size from the object's size and the CPUs.

One S3 connection carries far less than a machine can take in (AWS suggests ~85-90 MB/s per
connection), so a large object comes in several ranged GETs at once. Each request costs
client CPU of its own (signing, headers, a thread switch), and where the CPU is the limit
(a 1-vCPU function, an endpoint close by) every extra request and thread makes the read
slower. So:

- the first GET asks for :data:`FIRST_GET` bytes: a smaller object is complete after it;
- connections: :func:`default_concurrency`, from the CPUs this process may run on
  (``os.sched_getaffinity``, which honours the function's CPU share and taskset);
- unless ``max_concurrency`` is given, the first :data:`PROBE_BYTES` of the first response
  are timed before the other GETs go out: a connection faster than :data:`FAST_LINK` means
  the CPU, not the network, is the limit (an endpoint close by), and then only
  :func:`fast_link_concurrency` connections are used (one per CPU) instead of more streams
  fighting for the same CPUs. Timing 256 KiB costs ~3 ms on a capped connection;
- the rest is cut into about one part per remaining connection, so that each connection
  sends one request, never smaller than :data:`MIN_PART` nor larger than :data:`MAX_PART`
  (a long object still gets parts that a connection freed early can pick up).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ._buffer import Target

MiB = 1 << 20
FIRST_GET = 8 * MiB
MIN_PART = 8 * MiB
MAX_PART = 64 * MiB
CONNECTIONS_PER_CPU = 5
MAX_AUTO_CONCURRENCY = 16
PROBE_BYTES = 256 << 10
FAST_LINK = 500e6  # bytes/s on one connection: S3 serves ~85-90 MB/s per connection


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_concurrency(cpus: int | None = None) -> int:
    """Parallel connections for one object: enough to fill the CPUs with capped connections."""
    cpus = cpu_count() if cpus is None else cpus
    return max(2, min(MAX_AUTO_CONCURRENCY, CONNECTIONS_PER_CPU * cpus))


def part_size_for(remaining: int, connections: int) -> int:
    """Bytes per ranged GET for ``remaining`` bytes after the first GET, over ``connections``
    (the first one is busy with the first GET, so the rest goes to the others)."""
    others = max(1, connections - 1)
    part = -(-remaining // others)
    part = -(-part // MiB) * MiB  # whole MiB
    return max(MIN_PART, min(MAX_PART, part))


def fast_link_concurrency(cpus: int | None = None) -> int:
    """Connections when one connection already carries more than the CPUs can take in."""
    return max(2, cpu_count() if cpus is None else cpus)


def time_first_bytes(readinto: Callable[[memoryview], int] | None, target: Target, nbytes: int,
                     transient: tuple[type[BaseException], ...]) -> tuple[int, bool]:
    """Read the first ``nbytes`` of a response (``readinto`` of its body) into ``target`` at 0,
    timed: (bytes read, whether the connection is faster than :data:`FAST_LINK`). A failure is
    left to the range's own retries, which read on from where this stopped."""
    if readinto is None or nbytes <= 0:
        return 0, False
    got = 0
    began = time.perf_counter()
    try:
        while got < nbytes:
            region = target.region(got, nbytes - got)
            n = readinto(region)
            if not n:
                break
            target.commit(got, region[:n])
            got += n
    except transient:
        return got, False
    return got, got >= nbytes and got >= FAST_LINK * (time.perf_counter() - began)
