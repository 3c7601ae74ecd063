"""Packed size against zip deflate-9 and deflate-6 of the same tree, in one run (issue 2).

    python benchmarks/pack.py [--stack ml] [--level 19]

Target: packed (the sum of the zstd parts) <= 0.70x the deflate-9 zip, on numpy + scipy +
pandas + scikit-learn. Prints sizes, times and ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _trees import size_of, tree  # noqa: E402

from lambdaslim.build._pack import DEFAULT_LEVEL, pack_tree  # noqa: E402


def zip_tree(src: Path, dest: Path, level: int) -> float:
    start = time.perf_counter()
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for dirpath, _, filenames in os.walk(src):
            for f in sorted(filenames):
                full = Path(dirpath) / f
                zf.write(full, full.relative_to(src).as_posix())
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stack", default="ml")
    ap.add_argument("--level", type=int, default=DEFAULT_LEVEL)
    args = ap.parse_args()
    src = tree(args.stack)
    nbytes, nfiles = size_of(src)
    print(f"tree: {args.stack} ({src}): {nbytes / 1e6:.1f} MB in {nfiles} files, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for level in (9, 6):
            dest = Path(tmp) / f"deflate{level}.zip"
            secs = zip_tree(src, dest, level)
            rows.append((f"zip deflate-{level}", dest.stat().st_size, secs))
        layer = Path(tmp) / "layer.zip"
        result = pack_tree(str(src), str(layer), level=args.level, quiet=True)
        packed = sum(u.packed_bytes for u in result.index.units)
        rows.append((f"lambdaslim zstd-{args.level} (parts)", packed, result.seconds))
        rows.append(("lambdaslim layer zip (+python/)", result.layer_zip_bytes, result.seconds))
    deflate9 = rows[0][1]
    print(f"{'format':36} {'MB':>9} {'seconds':>8} {'x deflate-9':>12}")
    for name, size, secs in rows:
        print(f"{name:36} {size / 1e6:9.1f} {secs:8.1f} {size / deflate9:12.3f}")
    ratio = packed / deflate9
    verdict = "meets" if ratio <= 0.70 else "MISSES"
    print(f"\npacked / deflate-9 = {ratio:.3f} ({verdict} the <= 0.70 target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
