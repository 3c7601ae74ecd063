"""Process start to first inference, four ways in one run, interleaved, best of N (issue 9).

    python benchmarks/coldstart.py [--stack ml|torch|transformers|pure] [-n 3] [--level 3]

The stack's tree (benchmarks/_trees.py) is made what ``lambdaslim pack --strip`` ships (default
pruning, verified strip, unchecked-hash bytecode); every way starts from that same tree. Each
round starts a fresh ``python -S`` per way:

  (a) unpacked   the tree already on disk (what a container image gives)
  (b) zip        a deflate-9 zip extracted with ``zipfile.extractall`` into /tmp, then imported
  (c) disk       lambdaslim, ``LAMBDASLIM_PYTHON=disk`` (every file written)
  (d) memory     lambdaslim, ``LAMBDASLIM_PYTHON=memory`` (only native code and data written)
  (c2)/(d2)      a new process reusing the trees (c)/(d) left (a warm sandbox)

Times are wall clock from spawning the process to the handler's result; ratios are to (a)
of the same run; peak RSS is the child's VmHWM; "/tmp" is what the run left there.
Every extracting way writes into a fresh folder on /dev/shm (tmpfs), deleted after the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from _trees import layer_root, shipped, size_of  # noqa: E402

HANDLERS = {
    "ml": ("import numpy as np\nfrom sklearn.linear_model import LogisticRegression\n"
           "X = np.random.RandomState(0).rand(200, 8); y = (X[:, 0] > .5).astype(int)\n"
           "result = int(LogisticRegression().fit(X, y).predict(X[:5]).sum())\n"),
    "torch": ("import torch\nm = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))\n"
              "with torch.no_grad():\n    result = int(m(torch.ones(4, 64)).argmax(1).sum())\n"),
    "pure": ("import requests, attrs, click, jinja2, packaging.version, pyparsing, dateutil.parser, pytz, tabulate, jmespath, six\n"
             "t = jinja2.Template('{{ a }}-{{ b }}').render(a=1, b=2)\n"
             "result = [t, str(packaging.version.Version('1.2.3')), dateutil.parser.parse('2026-12-03').year,\n"
             "          jmespath.search('a.b', {'a': {'b': 3}}), tabulate.tabulate([[1, 2]]).count('-'),\n"
             "          requests.Request('GET', 'http://127.0.0.1/').prepare().method]\n"),
    # transformers lists transformers/models/ and reads every .py to build its import table
    "transformers": ("from tokenizers import Tokenizer, models, pre_tokenizers\n"
                     "from transformers import BertConfig, PreTrainedTokenizerFast\n"
                     "t = Tokenizer(models.WordLevel({'[UNK]': 0, 'hello': 1, 'world': 2}, unk_token='[UNK]'))\n"
                     "t.pre_tokenizer = pre_tokenizers.Whitespace()\n"
                     "fast = PreTrainedTokenizerFast(tokenizer_object=t, unk_token='[UNK]')\n"
                     "result = [fast('hello world')['input_ids'], BertConfig(hidden_size=32).hidden_size]\n"),
}
# The child's own peak RSS is VmHWM, which exec resets: wait4's ru_maxrss also counts the
# parent's memory at the fork (every way showed the benchmark's own 305 MB).
TAIL = ("import re as _re\nprint('@@' + repr([result, int(_re.search(r'VmHWM:\\s+(\\d+)', "
        "open('/proc/self/status').read()).group(1))]))\n")


def prepare(stack: str, level: int, work: Path) -> tuple[Path, Path, Path]:
    """(site, deflate-9 zip, unzipped lambdaslim layer root)."""
    site = shipped(stack)
    zpath = work / "site.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for p in sorted(site.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(site).as_posix())
    return site, zpath, layer_root(site, level, work)


def run_once(way: str, stack: str, site: Path, zpath: Path, opt: Path, tmp: Path) -> tuple[float, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LAMBDASLIM_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    code = HANDLERS[stack] + TAIL
    if way == "unpacked":
        env["PYTHONPATH"] = str(site)
    elif way == "zip":
        code = (f"import sys, zipfile\nzipfile.ZipFile({str(zpath)!r}).extractall({str(tmp)!r})\n"
                f"sys.path.insert(0, {str(tmp)!r})\n") + code
    else:
        env.update(PYTHONPATH=str(opt / "python"), LAMBDASLIM_LAYER_ROOTS=str(opt), LAMBDASLIM_TMP=str(tmp),
                   LAMBDASLIM_PYTHON="disk" if way.startswith("disk") else "memory")
        code = "import lambdaslim.bootstrap\n" + code
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{way} failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("@@"))
    _result, peak_kb = eval(line[2:])  # the handler's result (checked to be there) and VmHWM
    return seconds, int(peak_kb)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stack", choices=sorted(HANDLERS), default="ml")
    ap.add_argument("-n", type=int, default=3, help="rounds (best of N)")
    ap.add_argument("--level", type=int, default=3, help="zstd level of the packed layer")
    args = ap.parse_args()
    ways = ["unpacked", "zip", "disk", "memory", "disk-warm", "memory-warm"]
    best: dict[str, tuple[float, int, int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="coldstart-", dir="/dev/shm") as w:
        work = Path(w)
        site, zpath, opt = prepare(args.stack, args.level, work)
        for _ in range(args.n):
            for way in ways:  # interleaved: every round runs every way once
                tmp = work / f"tmp-{way.split('-')[0]}"
                if not way.endswith("-warm"):
                    shutil.rmtree(tmp, ignore_errors=True)
                seconds, rss = run_once(way, args.stack, site, zpath, opt, tmp)
                used = size_of(tmp) if tmp.exists() and way != "unpacked" else (0, 0)
                if way not in best or seconds < best[way][0]:
                    best[way] = (seconds, rss, *used)
        base = best["unpacked"][0]
        site_bytes, site_files = size_of(site)
        print(f"{args.stack}: tree {site_bytes / 1e6:.1f} MB in {site_files} files; best of {args.n}, "
              f"zstd level {args.level}, /tmp on tmpfs")
        print(f"{'way':<12} {'seconds':>8} {'ratio':>6} {'peak RSS':>9} {'/tmp':>9} {'files':>6}")
        for way in ways:
            s, rss, nbytes, nfiles = best[way]
            print(f"{way:<12} {s:8.3f} {s / base:6.2f} {rss / 1024:7.0f}MB {nbytes / 1e6:7.1f}MB {nfiles:6d}")
        print(json.dumps({w: best[w] for w in ways}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
