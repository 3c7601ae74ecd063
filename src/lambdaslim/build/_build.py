"""``lambdaslim pack -r requirements.txt``: resolve, prune, strip, trace, compile, pack, check.

The pipeline works on a private copy of the tree (a folder given with ``--from`` is never
modified) and ends with a report: per distribution the installed, pruned and packed size,
what each step removed, and every Lambda limit checked. Over a hard limit the exit code is
:data:`EXIT_LIMIT` and the report says the way out.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _limits
from ._errors import PackError
from ._resolve import Target
from .._size import format_size

EXIT_LIMIT = 3


@dataclass
class BuildOptions:
    output: str
    requirements: list[str] = field(default_factory=list)
    requirement_files: list[str] = field(default_factory=list)
    from_dir: str | None = None
    python: str | None = None
    arch: str | None = None
    prune: bool = True
    keep: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    strip: bool = False
    stubs: list[str] = field(default_factory=list)
    keep_gpu: list[str] = field(default_factory=list)  # GPU-only distributions to keep; "*": all
    keep_imported: str | None = None
    bytecode: bool = True
    split: int = 1
    max_layer_size: int = _limits.UNZIPPED_LAYERS
    ephemeral_storage: int = _limits.DEFAULT_TMP  # the function's /tmp
    level: int | None = None
    part_bytes: int | None = None
    pip_args: list[str] = field(default_factory=list)
    quiet: bool = False
    workdir: str | None = None  # where the tree is built (default: a temporary folder)


@dataclass
class Check:
    what: str
    value: int
    limit: int
    ok: bool
    hard: bool
    advice: str = ""


@dataclass
class LayerOut:
    path: str
    zip_bytes: int
    unzipped_bytes: int
    tmp_bytes: int
    distributions: list[str]
    runtime: dict[str, Any] = field(default_factory=dict)  # python/: as `inspect` reports it


@dataclass
class BuildResult:
    target: Target
    installed: dict[str, tuple[str, int, int]]  # name -> (version, bytes, files)
    pruned: dict[str, tuple[str, int, int]]
    packed: dict[str, int]
    layers: list[LayerOut]
    checks: list[Check]
    notes: list[str]
    steps: list[tuple[str, int, int, str]]  # (step, files, bytes, description)
    seconds: float
    plan: list[str] = field(default_factory=list)  # over a limit: the way under
    unusable: list[str] = field(default_factory=list)  # what would not import as packed

    @property
    def exit_code(self) -> int:
        return EXIT_LIMIT if self.unusable or any(c.hard and not c.ok for c in self.checks) else 0

    def render(self) -> str:
        return render(self)


def _sizes(tree: str) -> dict[str, tuple[str, int, int]]:
    from ._scan import scan

    out: dict[str, tuple[str, int, int]] = {}
    for unit in scan(tree):
        out[unit.name] = (unit.version, sum(f.size for f in unit.files), len(unit.files))
    return out


def _partition(sizes: list[int], n: int) -> list[list[int]]:
    """Indexes into ``sizes`` in ``n`` groups of about equal total (largest first, lightest bin)."""
    bins: list[list[int]] = [[] for _ in range(n)]
    totals = [0] * n
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        k = totals.index(min(totals))
        bins[k].append(i)
        totals[k] += sizes[i]
    return [sorted(b) for b in bins if b]


def split_names(output: str, n: int) -> list[str]:
    """``layer.zip`` -> ``layer-1.zip`` ... ``layer-N.zip`` (just ``layer.zip`` when n is 1)."""
    if n == 1:
        return [output]
    stem, ext = os.path.splitext(output)
    return [f"{stem}-{i}{ext or '.zip'}" for i in range(1, n + 1)]


def check_limits(layers: list[LayerOut], max_layer_size: int,
                 ephemeral_storage: int = _limits.DEFAULT_TMP) -> list[Check]:
    """Every Lambda limit against the layers built, with the way out where one is exceeded.

    ``ephemeral_storage`` is the function's /tmp (512 MB unless it was raised)."""
    checks: list[Check] = []
    total_unzipped = sum(lay.unzipped_bytes for lay in layers)
    for lay in layers:
        name = os.path.basename(lay.path)
        ok = lay.unzipped_bytes <= max_layer_size
        need = -(-total_unzipped // max_layer_size)
        checks.append(Check(
            f"{name} unzipped", lay.unzipped_bytes, max_layer_size, ok, hard=True,
            advice="" if ok else (
                f"split it with --split {max(2, need)}" if total_unzipped <= _limits.UNZIPPED_LAYERS
                else "prune more (--stub unused distributions, --keep-imported, --strip) "
                     "or ship a container image (10 GB)")))
        ok = lay.zip_bytes <= _limits.DIRECT_UPLOAD_ZIP
        checks.append(Check(f"{name} zip, direct upload", lay.zip_bytes, _limits.DIRECT_UPLOAD_ZIP,
                            ok, hard=False,
                            advice="" if ok else "upload it through S3 (aws lambda publish-layer-version "
                                                 "--content S3Bucket=...,S3Key=...)"))
    if len(layers) > 1 or max_layer_size != _limits.UNZIPPED_LAYERS:
        ok = total_unzipped <= _limits.UNZIPPED_LAYERS
        checks.append(Check("all layers unzipped (one function)", total_unzipped,
                            _limits.UNZIPPED_LAYERS, ok, hard=True,
                            advice="" if ok else "prune more (--stub, --keep-imported, --strip) or "
                                                 "ship a container image (10 GB)"))
    tmp = sum(lay.tmp_bytes for lay in layers)
    mib = 1024 * 1024
    suggested = max(512, -(-tmp * 12 // 10 // mib))
    if tmp > _limits.MAX_TMP:
        checks.append(Check("/tmp for a full extraction", tmp, _limits.MAX_TMP, False, hard=True,
                            advice="more than the largest EphemeralStorage (10240 MB): prune more, "
                                   "or import only part of it and release() between uses"))
    else:
        ok = tmp <= ephemeral_storage
        checks.append(Check("/tmp for a full extraction", tmp, ephemeral_storage, ok, hard=False,
                            advice="" if ok else f"set the function's EphemeralStorage to at least "
                                                 f"{suggested} MB (or rely on lazy extraction)"))
    return checks


def build(opts: BuildOptions, log: Callable[[str], None] | None = None) -> BuildResult:
    """Run the whole pipeline; raises :class:`PackError` (and subclasses) on bad input."""
    from . import _bytecode, _elf, _gpu, _inspect, _needs, _plan, _prune, _provenance, _record, _resolve, _stub, _trace
    from ._pack import DEFAULT_LEVEL, DEFAULT_PART_BYTES, pack_tree
    from ._scan import scan

    started = time.monotonic()
    say = log or (lambda msg: None)
    target = Target.parse(opts.python, opts.arch)
    if opts.split < 1:
        raise PackError(f"--split must be at least 1, not {opts.split}")
    if opts.from_dir is None and not opts.requirements and not opts.requirement_files:
        raise PackError("nothing to pack: give -r requirements.txt, requirement names, or --from DIR")
    if opts.from_dir is not None and (opts.requirements or opts.requirement_files):
        raise PackError("--from DIR and requirements exclude each other")
    out_dir = os.path.dirname(os.path.abspath(opts.output))
    if not os.path.isdir(out_dir):
        raise PackError(f"cannot write {opts.output}: folder {out_dir} does not exist", opts.output)
    if opts.keep_imported and _elf.host_machine() != target.machine:
        raise PackError(f"--keep-imported runs the code, which needs a {target.machine} machine; "
                        f"this one is {_elf.host_machine()}")
    for k in opts.keep_gpu:
        if k != "*" and not _gpu.is_gpu_only(k):
            raise PackError(f"--keep-gpu {k}: not a CUDA/GPU-only distribution (those are "
                            f"{', '.join(_gpu.GPU_ONLY)}); requirement names go before --keep-gpu, "
                            f"or write --keep-gpu=DIST")
    notes: list[str] = []
    steps: list[tuple[str, int, int, str]] = []
    unusable: list[str] = []
    work = tempfile.mkdtemp(prefix="lambdaslim-build-", dir=opts.workdir)
    try:
        tree = os.path.join(work, "site")
        if opts.from_dir is not None:
            if not os.path.isdir(opts.from_dir):
                raise PackError(f"{opts.from_dir}: no such folder", opts.from_dir)
            say(f"copying {opts.from_dir}")
            _prune.copy_tree(opts.from_dir, tree)
        else:
            say(f"installing wheels for {target}")
            _resolve.install(target, tree, requirements=opts.requirements,
                             requirement_files=opts.requirement_files, pip_args=opts.pip_args)
        installed = _sizes(tree)
        original, owners = _prune.walk_files(tree), _record.owners(tree)
        removed: list[tuple[str, list[str]]] = []  # (step, relpaths) for LAMBDASLIM_REMOVED
        gpu_removed = _gpu.make_absent(tree, opts.keep_gpu)
        for g in gpu_removed:
            steps.append((f"no-gpu {g.distribution}", g.removed_files, g.removed_bytes,
                          f"CUDA/GPU runtime only, Lambda has no GPU; --keep-gpu {g.distribution} keeps it"))
            removed.append(("no-gpu", g.removed))
        cuda_torch = _gpu.torch_cuda_build(tree)
        if cuda_torch:
            notes.append(_gpu.torch_cpu_advice(cuda_torch))
            if _gpu.breaks_cuda_torch(gpu_removed):
                unusable.append(f"torch {cuda_torch}: a CUDA build whose nvidia-* libraries were left "
                                f"out does not import; pack the CPU wheel (see above) or --keep-gpu")
        for name in opts.stubs:
            r = _stub.stub(tree, name)
            steps.append((f"stub {r.distribution}", r.removed_files, r.removed_bytes,
                          f"replaced by stub modules {', '.join(r.modules)}"))
            removed.append((f"stub {r.distribution}", r.removed))
        if opts.prune or opts.drop:
            say("pruning")
            report = _prune.prune(tree, steps=_prune.DEFAULT_STEPS if opts.prune else (),
                                  keep=opts.keep, drop=opts.drop)
            steps += [(s.name, s.files, s.bytes, s.description) for s in report.steps]
            removed += [(s.name, s.paths) for s in report.steps]
            notes += _needs.named_notes(report.named, original)
        if opts.strip:
            say("stripping shared libraries")
            sr = _prune.strip_tree(tree, machine=target.machine)
            steps.append(("strip", len(sr.stripped), sr.saved_bytes,
                          f"debug symbols of shared libraries ({sr.tool or 'no strip tool'})"))
            if sr.kept:
                broken = sum(1 for why in sr.kept.values() if "load" in why)
                notes.append(f"strip: kept the original of {len(sr.kept)} libraries"
                             + (f" ({broken} would not have loaded once stripped)" if broken else ""))
                for path, why in sorted(sr.kept.items()):
                    notes.append(f"  {os.path.relpath(path, tree)}: {why}")
            if sr.loaded:
                notes.append(f"strip: {sr.loaded} stripped libraries loaded in a child process")
        if opts.keep_imported:
            say(f"tracing {opts.keep_imported!r}")
            tr = _trace.trace_and_prune(tree, opts.keep_imported)
            steps.append(("keep-imported", tr.removed_files, tr.removed_bytes,
                          f"files {opts.keep_imported!r} never touched"))
            removed.append(("keep-imported", tr.removed))
        _provenance.record(tree, owners, original, removed)
        pruned = _sizes(tree)
        if opts.bytecode:
            bc = _bytecode.compile_tree(tree, target.python)
            if bc.skipped:
                notes.append(f"bytecode: {bc.skipped}")
            else:
                steps.append(("bytecode", -bc.compiled, -bc.bytes, "unchecked-hash .pyc added"))
                if bc.failed:
                    notes.append(f"bytecode: {bc.failed} .py files did not compile (kept as source)")
        runtime_dir = os.path.join(work, "runtime")
        say(f"preparing zstandard and filelock for {target}")
        notes += prepare_runtime(target, runtime_dir, strip=opts.strip, pip_args=opts.pip_args)
        units = scan(tree)
        groups = _partition([sum(f.size for f in u.files) for u in units], opts.split) \
            if opts.split > 1 else [list(range(len(units)))]
        outputs = split_names(opts.output, len(groups))
        layers: list[LayerOut] = []
        packed: dict[str, int] = {}
        for out, group in zip(outputs, groups):
            say(f"packing {os.path.basename(out)}")
            res = pack_tree(tree, out, level=opts.level or DEFAULT_LEVEL,
                            part_bytes=opts.part_bytes or DEFAULT_PART_BYTES,
                            quiet=opts.quiet, runtime_dir=runtime_dir,
                            units=[units[i] for i in group])
            unzipped, runtime = _inspect.packed_layer(out)
            for u in res.index.units:
                packed[u.name] = packed.get(u.name, 0) + u.packed_bytes
            layers.append(LayerOut(res.output, res.layer_zip_bytes, unzipped,
                                   sum(u.native_disk_bytes for u in res.index.units),
                                   [u.name for u in res.index.units], runtime))
        checks = check_limits(layers, opts.max_layer_size, opts.ephemeral_storage)
        plan: list[str] = []
        tmp_bytes = sum(lay.tmp_bytes for lay in layers)
        layer_bytes = sum(lay.unzipped_bytes for lay in layers)
        if any(lay.unzipped_bytes > opts.max_layer_size for lay in layers) \
                or layer_bytes > _limits.UNZIPPED_LAYERS or tmp_bytes > opts.ephemeral_storage:
            rows = _plan.rows(tree, [(u.name, [f.relpath for f in u.files]) for u in units], packed)
            plan = _plan.render(rows, layer_bytes=layer_bytes, layer_limit=opts.max_layer_size,
                                tmp_bytes=tmp_bytes, tmp_limit=opts.ephemeral_storage,
                                stripped=opts.strip, gpu_kept=bool(opts.keep_gpu and
                                                                   _gpu.gpu_distributions(tree)))
        return BuildResult(target, installed, pruned, packed, layers, checks, notes, steps,
                           time.monotonic() - started, plan, unusable)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def prepare_runtime(target: Target, dest: str, *, strip: bool = False,
                    pip_args: list[str] | None = None) -> list[str]:
    """Put zstandard and filelock built for ``target`` in ``dest`` (the layer's python/).

    From this interpreter when it matches the target, else installed with pip. zstandard's
    cffi backend (11 MB, never used on CPython where the C backend loads) is left out; with
    ``strip`` the C backend is stripped (verified like every other library). Returns notes.
    """
    from . import _bytecode, _elf, _layer_python, _prune, _resolve

    notes: list[str] = []
    if target.python == _bytecode.interpreter_version() and target.machine == _elf.host_machine():
        for src, rel in _layer_python.installed_runtime_files():
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copyfile(src, os.path.join(dest, rel))
    else:
        _resolve.install_runtime(target, dest, pip_args=pip_args)
    _prune.prune(dest, drop=list(_layer_python.UNUSED))  # before --strip: nothing stripped for nothing
    if strip:
        sr = _prune.strip_tree(dest, machine=target.machine)
        if sr.stripped:
            notes.append(f"strip: python/ runtime libraries {format_size(sr.saved_bytes)} smaller")
    return notes


def render(r: BuildResult) -> str:
    """The report printed after a build."""
    rows = [("distribution", "version", "installed", "pruned", "packed")]
    for name in sorted(r.installed, key=lambda n: -r.installed[n][1]):
        version, before, _files = r.installed[name]
        after = r.pruned.get(name, (version, 0, 0))[1]
        rows.append((name, version, format_size(before), format_size(after),
                     format_size(r.packed.get(name, 0))))
    for name in r.pruned:
        if name not in r.installed:
            rows.append((name, r.pruned[name][0], "-", format_size(r.pruned[name][1]),
                         format_size(r.packed.get(name, 0))))
    rows.append(("total", "", format_size(sum(v[1] for v in r.installed.values())),
                 format_size(sum(v[1] for v in r.pruned.values())),
                 format_size(sum(r.packed.values()))))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [f"built for {r.target} in {r.seconds:.1f} s", ""]
    for n, row in enumerate(rows):
        lines.append("  ".join(row[i].ljust(widths[i]) if i < 2 else row[i].rjust(widths[i])
                               for i in range(5)).rstrip())
        if n == 0 or n == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    if r.steps:
        lines += ["", "removed by step:"]
        for name, files, nbytes, description in r.steps:
            if nbytes < 0:
                lines.append(f"  {name:<14} {'+' + format_size(-nbytes):>10} in {-files} files  ({description})")
            else:
                lines.append(f"  {name:<14} {format_size(nbytes):>10} in {files} files  ({description})")
    if r.notes:
        lines += [""] + r.notes
    lines += ["", "Lambda limits:"]
    for c in r.checks:
        status = "ok" if c.ok else ("OVER (hard limit)" if c.hard else "over")
        line = f"  {c.what:<40} {_limits.against(c.value, c.limit):>10} / {_limits.show(c.limit):>8}  {status}"
        if c.advice:
            line += f": {c.advice}"
        lines.append(line)
    lines += r.plan
    if r.layers and r.layers[0].runtime:
        from ._inspect import render_runtime

        lines += ["", *render_runtime(r.layers[0].runtime)]
    if r.unusable:
        lines += ["", "would not import in Lambda:", *(f"  {u}" for u in r.unusable)]
    lines.append("")
    for lay in r.layers:
        lines.append(f"wrote {lay.path} ({format_size(lay.zip_bytes)}, {len(lay.distributions)} distributions)")
    if r.unusable:
        lines.append(f"this layer cannot be used as is (exit code {EXIT_LIMIT})")
    elif r.exit_code:
        lines.append("over a hard Lambda limit: this layer cannot be deployed as is (exit code 3)")
    return "\n".join(lines)


def stderr_log(msg: str) -> None:
    print(f"lambdaslim: {msg}", file=sys.stderr, flush=True)
