"""``lambdaslim inspect``: what a packed layer zip holds, against Lambda's limits."""

from __future__ import annotations

import os
import zipfile
from typing import Any

from .._runtime import _format
from . import _limits
from .._runtime._errors import ArchiveError
from .._size import format_size


def read_layer_zip(path: str) -> tuple[list[_format.LayerIndex], int, int, dict[str, Any]]:
    """(indexes in the zip, layer zip bytes, unzipped bytes of the whole layer, python/ facts)."""
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ArchiveError("no such file", path) from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"not a zip file: {exc}", path) from None
    with zf:
        indexes = []
        unzipped = 0
        own_bytes = vendor_bytes = 0
        versions: dict[str, str] = {}
        for info in zf.infolist():
            unzipped += info.file_size
            if info.filename.startswith(_VENDOR):
                vendor_bytes += info.file_size
                if info.filename == _VENDOR + "__init__.py":
                    versions = _versions(zf.read(info))
            elif info.filename.startswith("python/lambdaslim/"):
                own_bytes += info.file_size
            parts = info.filename.split("/")
            if len(parts) == 3 and parts[0] == _format.LAYER_DIR and parts[2] == _format.INDEX_NAME:
                idx = _format.loads(zf.read(info), f"{path}:{info.filename}")
                idx.folder = f"{parts[0]}/{parts[1]}"
                indexes.append(idx)
    if not indexes:
        raise ArchiveError("no lambdaslim index in this zip (not made by `lambdaslim pack`)", path)
    python = {"lambdaslim_bytes": own_bytes, "vendor_bytes": vendor_bytes, "vendor_versions": versions}
    return indexes, os.path.getsize(path), unzipped, python


_VENDOR = "python/lambdaslim/_vendor/"


def _versions(init: bytes) -> dict[str, str]:
    """VERSIONS from the layer's ``_vendor/__init__.py`` (a literal; never executed)."""
    import ast

    for line in init.decode("utf-8", "replace").splitlines():
        if line.startswith("VERSIONS = "):
            try:
                value = ast.literal_eval(line[len("VERSIONS = "):])
            except (ValueError, SyntaxError):
                return {}
            if isinstance(value, dict):
                return {str(k): str(v) for k, v in value.items()}
    return {}


def _runtime_section(python: dict[str, Any], dists: list[dict[str, Any]]) -> dict[str, Any]:
    """What python/ holds, and which zstandard and filelock the function's own code imports."""
    function_imports = {}
    for name in ("zstandard", "filelock"):
        own = next((d for d in dists if name in d["import_names"]), None)
        function_imports[name] = (
            {"source": "layer", "distribution": own["name"], "version": own["version"]} if own
            else {"source": None})
    return {**python, "function_imports": function_imports}


def report(path: str) -> dict[str, Any]:
    """The stable machine-readable description printed by ``inspect --json``."""
    indexes, zip_bytes, unzipped, python = read_layer_zip(path)
    dists: list[dict[str, Any]] = []
    for idx in indexes:
        for u in idx.units:
            dists.append({
                "name": u.name,
                "version": u.version,
                "kind": u.kind,
                "key": u.key,
                "import_names": u.import_names,
                "packed_bytes": u.packed_bytes,
                "unpacked_bytes": u.unpacked_bytes,
                "disk_bytes": u.native_disk_bytes,  # in /tmp in memory mode (the default)
                "memory_bytes": u.code_bytes,  # .py/.pyc, served from the layer, never in /tmp
                "disk_mode_bytes": u.disk_bytes,  # in /tmp with LAMBDASLIM_PYTHON=disk
                "files": len(u.files),
                "parts": len(u.parts),
                "layer_id": idx.layer_id,
            })
    packed = sum(d["packed_bytes"] for d in dists)
    unpacked = sum(d["unpacked_bytes"] for d in dists)
    tmp_needed = sum(d["disk_bytes"] for d in dists)  # memory mode: disk bytes only
    return {
        "layer": os.path.abspath(path),
        "layer_ids": [i.layer_id for i in indexes],
        "distributions": dists,
        "runtime": _runtime_section(python, dists),
        "totals": {
            "packed_bytes": packed,
            "unpacked_bytes": unpacked,
            "layer_zip_bytes": zip_bytes,
            "layer_unzipped_bytes": unzipped,
            "tmp_needed_bytes": tmp_needed,
            "memory_bytes": sum(d["memory_bytes"] for d in dists),
            "tmp_needed_disk_mode_bytes": sum(d["disk_mode_bytes"] for d in dists),
            "files": sum(d["files"] for d in dists),
        },
        "limits": {
            "layers_unzipped_bytes": _limits.UNZIPPED_LAYERS,
            "direct_upload_zip_bytes": _limits.DIRECT_UPLOAD_ZIP,
            "default_tmp_bytes": _limits.DEFAULT_TMP,
        },
        "checks": {
            "fits_unzipped_limit": unzipped <= _limits.UNZIPPED_LAYERS,
            "fits_direct_upload": zip_bytes <= _limits.DIRECT_UPLOAD_ZIP,
            "fits_default_tmp": tmp_needed <= _limits.DEFAULT_TMP,
        },
    }


def _limit(n: int) -> str:
    """Limits as AWS states them: 250 MB means 250 MiB."""
    return f"{n // (1024 * 1024)} MB"


def render(data: dict[str, Any]) -> str:
    """The human table."""
    rows = [("distribution", "version", "imports", "packed", "unpacked", "disk", "memory", "files")]
    for d in sorted(data["distributions"], key=lambda d: -d["unpacked_bytes"]):
        imports = ", ".join(d["import_names"]) or "-"
        if len(imports) > 36:
            imports = imports[:33] + "..."
        rows.append((d["name"], d["version"], imports, format_size(d["packed_bytes"]),
                     format_size(d["unpacked_bytes"]), format_size(d["disk_bytes"]),
                     format_size(d["memory_bytes"]), str(d["files"])))
    t = data["totals"]
    rows.append(("total", "", "", format_size(t["packed_bytes"]), format_size(t["unpacked_bytes"]),
                 format_size(t["tmp_needed_bytes"]), format_size(t["memory_bytes"]), str(t["files"])))
    widths = [max(len(r[i]) for r in rows) for i in range(8)]
    lines = []
    for n, r in enumerate(rows):
        cells = [r[i].ljust(widths[i]) if i < 3 else r[i].rjust(widths[i]) for i in range(8)]
        lines.append("  ".join(cells).rstrip())
        if n == 0 or n == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    lim = data["limits"]

    def check(ok: bool) -> str:
        return "ok" if ok else "OVER"

    c = data["checks"]
    lines += ["", *_render_runtime(data["runtime"])]
    lines += [
        "",
        f"layer zip            {format_size(t['layer_zip_bytes']):>10}   direct upload limit "
        f"{_limit(lim['direct_upload_zip_bytes'])}: {check(c['fits_direct_upload'])}"
        + ("" if c["fits_direct_upload"] else " (upload it through S3)"),
        f"layer unzipped       {format_size(t['layer_unzipped_bytes']):>10}   all layers limit "
        f"{_limit(lim['layers_unzipped_bytes'])}: {check(c['fits_unzipped_limit'])}",
        f"/tmp, all extracted  {format_size(t['tmp_needed_bytes']):>10}   default /tmp "
        f"{_limit(lim['default_tmp_bytes'])}: {check(c['fits_default_tmp'])}"
        + ("" if c["fits_default_tmp"] else
           f" (set EphemeralStorage to at least {-(-t['tmp_needed_bytes'] * 12 // 10 // (1024 * 1024))} MB"
           " or rely on lazy extraction and release())"),
        f"  .py/.pyc ({format_size(t['memory_bytes'])}) are read from the layer into memory (at most "
        f"LAMBDASLIM_CODE_CACHE held); LAMBDASLIM_PYTHON=disk needs {format_size(t['tmp_needed_disk_mode_bytes'])} of /tmp",
    ]
    return "\n".join(lines)


def _render_runtime(rt: dict[str, Any]) -> list[str]:
    deps = ", ".join(f"{n} {v}" for n, v in sorted(rt["vendor_versions"].items())) or "zstandard, filelock"
    lines = [
        f"python/lambdaslim    {format_size(rt['lambdaslim_bytes']):>10}   the runtime parts only "
        "(bootstrap, handler, s3)",
        f"  private deps       {format_size(rt['vendor_bytes']):>10}   {deps} under lambdaslim/_vendor",
    ]
    for name, fi in sorted(rt["function_imports"].items()):
        got = (f"{fi['distribution']} {fi['version']} packed in this layer" if fi["source"] == "layer"
               else "not in this layer (lambdaslim's copy is private: pack it if the function imports it)")
        lines.append(f"  `import {name}` in the function: {got}")
    return lines
