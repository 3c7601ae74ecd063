"""Pack a site-packages-like folder into a Lambda layer zip (see docs/format.md).

Each unit (distribution) is cut into parts of about ``part_bytes``; parts are compressed with
zstd in parallel threads (python-zstandard releases the GIL) and written to the zip as they
finish. The zip is written to a temporary name beside the output and renamed at the end, so a
failure never leaves a half-written layer.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass

from .._runtime import _format
from ._errors import PackError
from ._layer_python import dep_versions, runtime_files, stage
from ._scan import ScannedFile, ScannedUnit, scan
from .._version import __version__

DEFAULT_LEVEL = 19
DEFAULT_PART_BYTES = 32 * 1024 * 1024
# Code parts are small: loading one module decompresses at most this much (docs/format.md).
CODE_PART_BYTES = 2 * 1024 * 1024
MAX_WINDOW_LOG = 23  # 8 MiB: bounds the memory a decompressing thread needs at cold start
_CHUNK = 1 << 20


@dataclass
class PackResult:
    output: str
    index: _format.LayerIndex
    layer_zip_bytes: int
    seconds: float


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)


Run = tuple[int, int, "int | None", int]  # (first file, count, slice offset or None, bytes)


def _split(files: list[ScannedFile], part_bytes: int) -> list[Run]:
    """Cut the file list into parts of about ``part_bytes``.

    Whole files are grouped; a file larger than ``part_bytes`` becomes slices of its own, so
    that one huge library (torch's 434 MB libtorch_cpu.so) still decompresses on every core.
    """
    runs: list[Run] = []
    start, size = 0, 0
    for i, f in enumerate(files):
        if f.size > part_bytes:
            if i > start:
                runs.append((start, i - start, None, size))
            for off in range(0, f.size, part_bytes):
                runs.append((i, 1, off, min(part_bytes, f.size - off)))
            start, size = i + 1, 0
            continue
        if i > start and size + f.size > part_bytes:
            runs.append((start, i - start, None, size))
            start, size = i, 0
        size += f.size
    if start < len(files) or not runs:
        runs.append((start, len(files) - start, None, size))
    return runs


def _ordered(unit: ScannedUnit) -> tuple[list[ScannedFile], list[tuple[str, int, int]]]:
    """The unit's files grouped by kind (disk, meta, then .pyc and .py code) and the groups
    as (kind, first, count): a part never mixes kinds, so memory mode decompresses only what
    goes to disk, and importing a module only bytecode."""
    groups: dict[str, list[ScannedFile]] = {"disk": [], "meta": [], "pyc": [], "py": []}
    for f in unit.files:
        kind = _format.file_kind(f.relpath, unit.dist_info)
        if kind == _format.CODE:
            kind = "pyc" if f.relpath.endswith(".pyc") else "py"
        groups[kind].append(f)
    files: list[ScannedFile] = []
    spans: list[tuple[str, int, int]] = []
    for kind, members in groups.items():
        if members:
            spans.append((_format.CODE if kind in ("pyc", "py") else kind, len(files), len(members)))
            files.extend(members)
    return files, spans


def _runs(unit: ScannedUnit, part_bytes: int) -> tuple[list[ScannedFile], list[tuple[Run, str]]]:
    files, spans = _ordered(unit)
    runs: list[tuple[Run, str]] = []
    for kind, first, count in spans:
        size = min(part_bytes, CODE_PART_BYTES) if kind == _format.CODE else part_bytes
        for start, n, offset, nbytes in _split(files[first : first + count], size):
            runs.append(((first + start, n, offset, nbytes), kind))
    if not runs:
        runs.append(((0, 0, None, 0), _format.DISK))
    return files, runs


def _compress_part(src: str, files: list[ScannedFile], run: Run, level: int) -> tuple[bytes, int, str]:
    """Compress the bytes of one run; returns (frame, unpacked bytes, sha256 of the frame)."""
    import zstandard

    first, count, offset, unpacked = run
    params = zstandard.ZstdCompressionParameters.from_level(level, source_size=unpacked, write_checksum=1)
    if params.window_log > MAX_WINDOW_LOG:
        params = zstandard.ZstdCompressionParameters.from_level(
            level, source_size=unpacked, window_log=MAX_WINDOW_LOG, write_checksum=1)
    sink = io.BytesIO()
    cctx = zstandard.ZstdCompressor(compression_params=params)
    written = 0
    writer = cctx.stream_writer(sink, size=unpacked, closefd=False)
    for f in files[first : first + count]:
        full = os.path.join(src, f.relpath)
        with open(full, "rb") as fh:
            if offset is not None:
                fh.seek(offset)
            remaining = f.size if offset is None else unpacked
            while remaining:
                chunk = fh.read(min(_CHUNK, remaining))
                if not chunk:
                    raise PackError(f"{f.relpath} shrank while packing", full)
                writer.write(chunk)
                remaining -= len(chunk)
                written += len(chunk)
    writer.flush(zstandard.FLUSH_FRAME)
    frame = sink.getvalue()
    return frame, written, hashlib.sha256(frame).hexdigest()


def _unit_hash(files: list[ScannedFile], part_hashes: list[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([[f.relpath, f.size, f.mode] for f in files]).encode())
    for p in part_hashes:
        h.update(p.encode())
    return h.hexdigest()


def _dirs_of(files: list[ScannedFile]) -> int:
    dirs = set()
    for f in files:
        parent = f.relpath.rpartition("/")[0]
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    return len(dirs)


class _Progress:
    def __init__(self, total_bytes: int, enabled: bool) -> None:
        self.total = max(1, total_bytes)
        self.done = 0
        self.enabled = enabled
        self.start = time.monotonic()

    def advance(self, nbytes: int, label: str) -> None:
        self.done += nbytes
        if self.enabled:
            pct = 100.0 * self.done / self.total
            rate = self.done / max(1e-6, time.monotonic() - self.start) / 1e6
            sys.stderr.write(f"\r  packing {pct:5.1f}%  {rate:6.1f} MB/s  {label[:40]:<40}")
            sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _zip_file(zf: zipfile.ZipFile, src: str, arcname: str, compress: int) -> None:
    info = zipfile.ZipInfo.from_file(src, arcname)
    info.compress_type = compress
    mode = os.stat(src).st_mode
    info.external_attr = ((0o755 if mode & 0o111 else 0o644) | 0o100000) << 16
    with open(src, "rb") as fh, zf.open(info, "w") as out:
        while chunk := fh.read(_CHUNK):
            out.write(chunk)


def pack_tree(
    src: str,
    output: str,
    *,
    level: int = DEFAULT_LEVEL,
    part_bytes: int = DEFAULT_PART_BYTES,
    quiet: bool = False,
    progress: bool | None = None,
    runtime_dir: str | None = None,
    runtime_bytecode: bool = True,
    workers: int | None = None,
    units: list[ScannedUnit] | None = None,
) -> PackResult:
    """Pack ``src`` into the layer zip ``output``. Raises :class:`PackError` on bad input.

    ``units`` lets a caller pass an already scanned (and pruned) grouping of ``src``.
    ``runtime_dir`` is a folder holding zstandard and filelock built for the target (default:
    this interpreter's); ``runtime_bytecode`` ships .pyc for python/ (only right when the
    target Python is this interpreter's version).
    """
    started = time.monotonic()
    if not 1 <= level <= 22:
        raise PackError(f"--level must be 1..22, not {level}")
    src = os.path.abspath(src)
    scanned = units if units is not None else scan(src)
    out_dir = os.path.dirname(os.path.abspath(output)) or "."
    if not os.path.isdir(out_dir):
        raise PackError(f"cannot write {output}: folder {out_dir} does not exist", output)
    if not os.access(out_dir, os.W_OK):
        raise PackError(f"cannot write {output}: folder {out_dir} is not writable", output)
    runtime = runtime_files(runtime_dir)

    jobs: list[tuple[int, int, Run]] = []  # (unit no, part no, run)
    runs_of: list[list[tuple[Run, str]]] = []
    for u_no, unit in enumerate(scanned):
        unit.files, runs = _runs(unit, part_bytes)
        runs_of.append(runs)
        for p_no, (run, _kind) in enumerate(runs):
            jobs.append((u_no, p_no, run))
    jobs.sort(key=lambda j: -j[2][3])  # biggest first: the slowest parts must not start last
    total_bytes = sum(f.size for u in scanned for f in u.files)
    show = (sys.stderr.isatty() if progress is None else progress) and not quiet
    bar = _Progress(total_bytes, show)

    keys = [f"{_safe(u.name)}-{_safe(u.version)}" for u in scanned]
    try:
        fd, tmp_path = tempfile.mkstemp(prefix="." + os.path.basename(output) + ".", dir=out_dir)
    except OSError as exc:
        raise PackError(f"cannot write {output}: {exc.strerror}", output) from None
    os.close(fd)
    try:
        part_info: dict[tuple[int, int], tuple[str, int, int, str]] = {}
        with zipfile.ZipFile(tmp_path, "w", allowZip64=True) as zf:
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
                futures = {
                    pool.submit(_compress_part, src, scanned[u_no].files, run, level): (u_no, p_no)
                    for u_no, p_no, run in jobs
                }
                try:
                    for fut in concurrent.futures.as_completed(futures):
                        u_no, p_no = futures[fut]
                        frame, unpacked, digest = fut.result()
                        name = f"parts/{keys[u_no]}-{digest[:12]}.{p_no}.zst"
                        part_info[(u_no, p_no)] = (name, unpacked, len(frame), digest)
                        part_info_name = name
                        # Placeholder arcname: the layer id (a hash of everything) is known only
                        # at the end, so parts are written under a fixed prefix and the layer
                        # folder is named by a short hash of the unit hashes, computed below.
                        zf.writestr(_zinfo(f"@parts@/{part_info_name}"), frame)
                        bar.advance(unpacked, scanned[u_no].name)
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
            bar.finish()
        index_units: list[_format.Unit] = []
        for u_no, unit in enumerate(scanned):
            parts = []
            for p_no, ((first, count, offset, _), kind) in enumerate(runs_of[u_no]):
                name, unpacked, packed, digest = part_info[(u_no, p_no)]
                parts.append(_format.Part(name, first, count, unpacked, packed, digest, offset, kind))
            digest = _unit_hash(unit.files, [p.sha256 for p in parts])
            index_units.append(_format.Unit(
                key=f"{keys[u_no]}-{digest[:12]}",
                name=unit.name,
                version=unit.version,
                kind=unit.kind,
                import_names=unit.import_names,
                dist_info=unit.dist_info,
                unpacked_bytes=sum(f.size for f in unit.files),
                disk_bytes=_format.disk_bytes([f.size for f in unit.files], _dirs_of(unit.files)),
                packed_bytes=sum(p.packed_bytes for p in parts),
                code_bytes=sum(f.size for f in unit.files if _format.file_kind(f.relpath, None) == _format.CODE),
                native_disk_bytes=_format.disk_bytes(
                    [f.size for f in unit.files if _format.file_kind(f.relpath, unit.dist_info) == _format.DISK],
                    _dirs_of(unit.files)),
                sha256=digest,
                parts=parts,
                files=[_format.FileEntry(f.relpath, f.size, f.mode) for f in unit.files],
            ))
        layer_id = hashlib.sha256("".join(u.sha256 for u in index_units).encode()).hexdigest()[:16]
        index = _format.LayerIndex(
            layer_id=layer_id,
            created_by=f"lambdaslim {__version__}",
            zstd_level=level,
            part_bytes=part_bytes,
            units=index_units,
        )
        with tempfile.TemporaryDirectory(prefix=".lambdaslim-python.", dir=out_dir) as stage_dir:
            staged = stage(runtime, stage_dir, runtime_bytecode, dep_versions(runtime_dir))
            final = _relayout(tmp_path, out_dir, layer_id, index, src, scanned, staged)
        os.replace(final, output)
    except BaseException:
        for leftover in (tmp_path, tmp_path + ".final"):
            if os.path.exists(leftover):
                os.unlink(leftover)
        raise
    else:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
    return PackResult(os.path.abspath(output), index, os.path.getsize(output), time.monotonic() - started)


def _zinfo(name: str, mode: int = 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = (mode | 0o100000) << 16
    return info


def _relayout(
    tmp_path: str,
    out_dir: str,
    layer_id: str,
    index: _format.LayerIndex,
    src: str,
    scanned: list[ScannedUnit],
    runtime: list[tuple[str, str]],
) -> str:
    """Write the final zip: python/ runtime, the layer folder with index, parts and meta.

    Parts are copied from the scratch zip without recompression (raw stored entries).
    """
    base = f"{_format.LAYER_DIR}/{layer_id}"
    final = tmp_path + ".final"
    with zipfile.ZipFile(tmp_path) as scratch, zipfile.ZipFile(final, "w", allowZip64=True) as zf:
        for full, rel in sorted(runtime, key=lambda t: t[1]):
            _zip_file(zf, full, f"python/{rel}", zipfile.ZIP_DEFLATED)
        for unit, scanned_unit in zip(index.units, scanned):
            if unit.dist_info:
                for f in scanned_unit.files:
                    if f.relpath.startswith(unit.dist_info + "/"):
                        _zip_file(zf, os.path.join(src, f.relpath), f"{base}/meta/{f.relpath}", zipfile.ZIP_DEFLATED)
        for info in scratch.infolist():
            name = info.filename[len("@parts@/"):]
            with scratch.open(info) as fh, zf.open(_zinfo(f"{base}/{name}"), "w") as out:
                while chunk := fh.read(_CHUNK):
                    out.write(chunk)
        info = _zinfo(f"{base}/{_format.INDEX_NAME}")
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, index.dumps())
    return final
