"""No GPU on Lambda: distributions that are only CUDA/GPU runtime are left out by default.

``xgboost`` from the registry pulls ``nvidia-nccl-cu12`` (491 MB), torch's default wheel pulls
~2.5 GB of ``nvidia-*`` and ``triton``; none of it can ever run in a Lambda function. When a
layer is built for Lambda (``-r``/``--from``) these distributions are made *absent*: every file
they own goes (``nvidia/`` is a namespace shared by many such wheels: a file goes when every
distribution claiming it goes), their entry points go (a machine without them has none), and
their ``METADATA``/``RECORD`` stay so version and requirement checks of the packages that
depend on them still pass. Code that probes for them sees what a machine without them shows:
``from nvidia.nccl import lib`` raises ``ModuleNotFoundError`` and ``importlib.util.find_spec``
returns None. No stub module is written: a module that imports and then raises would look
present to ``find_spec`` probes.

:data:`GPU_ONLY` is the one list of what counts; ``--keep-gpu`` keeps them all or one.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass, field
from email.parser import HeaderParser

from . import _prune, _record
from ._stub import normalize

# Distributions (PEP 503 names, fnmatch patterns) that hold only CUDA/GPU runtime code.
GPU_ONLY: tuple[str, ...] = (
    "nvidia-*",             # CUDA libraries as wheels: cudnn, cublas, nccl, cusparse, nvjitlink...
    "triton",               # GPU kernel compiler (torch's default wheel requires it)
    "pytorch-triton",       # the same from the PyTorch index
    "pytorch-triton-rocm",
    "jax-cuda*-plugin",     # jax's CUDA backend
    "jax-cuda*-pjrt",
    "cupy-cuda*",           # CuPy built for a CUDA version
    "tensorrt",
    "tensorrt-*",
    "cuda-python",
    "cuda-bindings",
)
# Matched by a pattern above but not GPU runtime: nvidia-ml-py (pynvml) is pure Python whose
# probe reports "no GPU" itself, and packages import it unguarded.
NOT_GPU_ONLY: tuple[str, ...] = ("nvidia-ml-py", "nvidia-ml-py3")

MARKER = "LAMBDASLIM_ABSENT"  # in the dist-info of a distribution made absent: why, what it weighed
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
_REQ_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_gpu_only(name: str) -> bool:
    """Whether the distribution ``name`` is CUDA/GPU runtime only (see :data:`GPU_ONLY`)."""
    n = normalize(name)
    return n not in NOT_GPU_ONLY and any(fnmatch.fnmatchcase(n, p) for p in GPU_ONLY)


@dataclass
class AbsentResult:
    distribution: str
    version: str
    removed_files: int
    removed_bytes: int
    removed: list[str] = field(default_factory=list)


def _metadata(root: str, dist_info: str) -> tuple[str, str, list[str]]:
    """(Name, Version, Requires-Dist) of a dist-info folder."""
    try:
        with open(os.path.join(root, dist_info, "METADATA"), encoding="utf-8", errors="replace") as fh:
            headers = HeaderParser().parse(fh)
    except OSError:
        return dist_info.split("-")[0], "", []
    return (str(headers.get("Name", dist_info.split("-")[0])), str(headers.get("Version", "")),
            [str(r) for r in headers.get_all("Requires-Dist") or []])


def gpu_distributions(root: str, keep: list[str] | None = None) -> list[tuple[str, str, str]]:
    """(dist-info, Name, Version) of the GPU-only distributions in ``root`` not kept.

    ``keep`` holds distribution names to keep, or ``*`` for all of them.
    """
    kept = {normalize(k) for k in keep or []}
    if "*" in kept:
        return []
    out = []
    for d in _record.dist_infos(root):
        name, version, _ = _metadata(root, d)
        if is_gpu_only(name) and normalize(name) not in kept:
            out.append((d, name, version))
    return out


def make_absent(root: str, keep: list[str] | None = None) -> list[AbsentResult]:
    """Remove the files and entry points of every GPU-only distribution in ``root``.

    A file two distributions claim (``nvidia/__init__.py`` of older CUDA wheels) goes only when
    every claimant goes. Each dist-info keeps METADATA and RECORD and gets :data:`MARKER`.
    """
    chosen = gpu_distributions(root, keep)
    if not chosen:
        return []
    gone = {d for d, _, _ in chosen}
    claimed_by_others: set[str] = set()
    for d in _record.dist_infos(root):
        if d not in gone:
            claimed_by_others.update(r for r in (_record.norm_entry(row[0])
                                                 for row in _record.read_record(root, d)) if r)
    results: list[AbsentResult] = []
    removing: set[str] = set()
    for d, name, version in chosen:
        own = sorted({rel for rel in (_record.norm_entry(row[0]) for row in _record.read_record(root, d))
                      if rel is not None and not rel.startswith(d + "/")
                      and rel not in claimed_by_others and rel not in removing
                      and os.path.isfile(os.path.join(root, rel))})
        removing.update(own)
        size = sum(os.path.getsize(os.path.join(root, rel)) for rel in own)
        results.append(AbsentResult(name, version, len(own), size, own))
    _prune.remove_files(root, sorted(removing))
    for (d, _, _), r in zip(chosen, results):
        for extra in ("entry_points.txt",):
            try:
                os.unlink(os.path.join(root, d, extra))
            except FileNotFoundError:
                pass
        with open(os.path.join(root, d, MARKER), "w", encoding="utf-8") as fh:
            json.dump({"reason": "CUDA/GPU runtime only: Lambda has no GPU",
                       "removed_files": r.removed_files, "removed_bytes": r.removed_bytes}, fh)
    _record.sync_records(root, added={d: [f"{d}/{MARKER}"] for d, _, _ in chosen})
    return results


def torch_cuda_build(root: str) -> str | None:
    """The version of torch in ``root`` when it is a CUDA build, else None.

    A CUDA build says so in ``torch/version.py`` (``cuda = '12.8'``) or requires ``nvidia-*``
    wheels; it cannot import once they are absent (libtorch_cuda.so links them).
    """
    for d in _record.dist_infos(root):
        name, version, requires = _metadata(root, d)
        if normalize(name) != "torch":
            continue
        needed = (_REQ_NAME.match(r) for r in requires if "extra ==" not in r)
        if "+cu" in version or any(m and is_gpu_only(m.group(0)) for m in needed):
            return version
        try:
            with open(os.path.join(root, "torch", "version.py"), encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("cuda") and "None" not in line:
                        return version
        except OSError:
            pass
    return None


def breaks_cuda_torch(removed: list[AbsentResult]) -> bool:
    """Whether a CUDA build of torch loses what it links: any ``nvidia-*`` wheel left out
    (``libtorch_cuda.so`` needs their symbols; triton is optional for it)."""
    return any(normalize(g.distribution).startswith("nvidia-") for g in removed)


def torch_cpu_advice(version: str) -> str:
    """The report's note for a CUDA build of torch: what breaks and how to get the CPU wheel."""
    base = version.split("+")[0]
    return (f"torch {version} is a CUDA build: it links the nvidia-* libraries, so it does not "
            f"import without them, and Lambda has no GPU. Pack the CPU wheel instead: "
            f"--pip-arg=--extra-index-url={CPU_TORCH_INDEX} \"torch=={base}+cpu\" "
            f"(or --pip-arg=--index-url={CPU_TORCH_INDEX} when every requirement is there)")
