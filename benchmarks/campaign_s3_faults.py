"""S3 faults campaign (issue 10): cuts, stalls, 500/503 bursts and overwrites during reads.

    python benchmarks/campaign_s3_faults.py [--cases 300] [--seed 1]

Against the real S3 server of lambdaslim.testing (SeaweedFS, else moto) behind
lambdaslim.testing.CuttingProxy, using only the public API (lambdaslim.s3.stream_get,
stream_put, ObjectChangedError, the ``cache`` option). Each case injects one fault:
a connection cut at a random offset (FIN or RST, 1-3 times), a stall longer than the read
timeout, a burst of 500/503 answers, or an overwrite of the object while it is being read.
A read must give exactly the bytes of one version, or raise our error (ObjectChangedError,
S3TransferError...); mixed or wrong bytes are a defect. With ``cache="tmp"`` the next read,
faults gone, must give exactly the current bytes: a partial entry never serves.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from _campaign import ROOT, Tally, ours

KiB, MiB = 1024, 1024 * 1024


class Campaign:
    def __init__(self, server: Any, seed: int) -> None:
        from lambdaslim.testing import CuttingProxy

        self.server, self.rng = server, random.Random(seed)
        self.plain = server.client()
        self.proxy = CuttingProxy.for_url(server.endpoint_url).start()
        self.slow = CuttingProxy.for_url(server.endpoint_url, rate=4 * MiB).start()
        cfg = {"retries": {"max_attempts": 1, "mode": "standard"}, "read_timeout": 1, "connect_timeout": 2}
        self.via_proxy = server.client(endpoint_url=self.proxy.url, **cfg)
        self.via_slow = server.client(endpoint_url=self.slow.url, **cfg)

    def close(self) -> None:
        self.proxy.stop()
        self.slow.stop()

    def _put(self, data: bytes, key: str | None = None) -> str:
        from lambdaslim import s3

        key = key or f"campaign/{uuid.uuid4().hex}"
        s3.stream_put(self.server.bucket, data, key, client=self.plain)
        return key

    def case(self) -> tuple[str, str]:
        from lambdaslim import s3

        rng = self.rng
        kind = rng.choice(["cut", "cut", "burst", "stall", "overwrite"])
        data = rng.randbytes(rng.randrange(64 * KiB, 3 * MiB))
        key = self._put(data)
        cache = rng.choice([None, "tmp"])
        versions = [data]
        client = self.via_proxy
        overwrite: threading.Thread | None = None
        if kind == "cut":
            self.proxy.cut_after(rng.randrange(len(data) + 4 * KiB), rng.randint(1, 3), reset=rng.random() < 0.5)
        elif kind == "burst":
            self.proxy.fail_next(rng.randint(1, 4), rng.choice([500, 503]))
        elif kind == "stall":
            self.proxy.stall_next(rng.uniform(1.2, 2.5))
        else:
            client = self.via_slow
            new = rng.randbytes(len(data))
            versions.append(new)
            overwrite = threading.Timer(rng.uniform(0.0, len(data) / (4 * MiB) * 1.2), self._put, (new, key))
            overwrite.start()
        try:
            s3.clear_cache()
            got = s3.stream_get(self.server.bucket, key, client=client, cache=cache,
                                part_size=rng.choice([256 * KiB, 1 * MiB, 8 * MiB])).read()
            verdict, detail = ("accepted", "") if got in versions else (
                "defect", f"{kind}: {len(got)} bytes of no single version (mixed or wrong)")
        except Exception as exc:  # noqa: BLE001 - classifying is the point
            verdict = "refused" if ours(exc) else "defect"
            detail = f"{kind}: {type(exc).__name__}: {str(exc)[:200]}"
        finally:
            self.proxy.disarm()
            if overwrite is not None:
                overwrite.join()
        if cache == "tmp" and verdict != "defect":  # faults gone: the cache must not serve a partial entry
            current = self.plain.get_object(Bucket=self.server.bucket, Key=key)["Body"].read()
            again = s3.stream_get(self.server.bucket, key, client=self.plain, cache="tmp").read()
            if again != current:
                verdict, detail = "defect", f"{kind}: the disk cache served {len(again)} wrong bytes"
        return verdict, detail


def run(cases: int, seed: int, server: Any) -> Tally:
    campaign = Campaign(server, seed)
    tally = Tally("s3 faults")
    try:
        for _ in range(cases):
            tally.add(*campaign.case())
    finally:
        campaign.close()
    return tally


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from lambdaslim.testing import S3Server

    with tempfile.TemporaryDirectory(prefix="lambdaslim-s3-") as work:
        os.environ["LAMBDASLIM_TMP"] = str(Path(work) / "tmp")
        with S3Server() as server:
            started = time.monotonic()
            tally = run(args.cases, args.seed, server)
            print(f"({server.backend}, {time.monotonic() - started:.0f} s)")
            return tally.report()


if __name__ == "__main__":
    raise SystemExit(main())
