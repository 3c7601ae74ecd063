"""``lambdaslim inspect``: what a packed layer zip holds, against Lambda's limits."""

from __future__ import annotations

import os
import zipfile
from typing import Any

from .._runtime import _format, _schema
from . import _limits
from .._runtime._errors import ArchiveError
from .._size import format_size


def read_layer_zip(path: str, broken: list[dict[str, str]] | None = None
                   ) -> tuple[list[_format.LayerIndex], int, int, dict[str, Any]]:
    """(indexes in the zip, layer zip bytes, unzipped bytes of the whole layer, python/ facts).

    An index over :data:`MAX_INDEX_BYTES` is refused without being read. With ``broken``, an
    index that fails validation is listed there ({"layer", "error"}) instead of raising.
    """
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ArchiveError("no such file", path) from None
    except RecursionError:
        raise ArchiveError("not a zip file: nested too deeply", path) from None
    except Exception as exc:  # zipfile raises many types on hostile input (see _zipbundle)
        raise ArchiveError(f"not a zip file: {type(exc).__name__}: {exc}", path) from None
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
                    versions = _versions(_read_member(zf, info, path, 1 << 20))
            elif info.filename.startswith("python/lambdaslim/"):
                own_bytes += info.file_size
            parts = info.filename.split("/")
            if len(parts) == 3 and parts[0] == _format.LAYER_DIR and parts[2] == _format.INDEX_NAME:
                where = f"{path}:{info.filename}"
                try:
                    if info.file_size > MAX_INDEX_BYTES:
                        raise ArchiveError(f"index is {info.file_size} bytes (at most {MAX_INDEX_BYTES}); "
                                           "refused without reading it", where)
                    idx = _format.loads(_read_member(zf, info, where, MAX_INDEX_BYTES), where)
                except ArchiveError as exc:
                    if broken is None:
                        raise
                    broken.append({"layer": f"{parts[0]}/{parts[1]}", "error": str(exc)})
                    continue
                idx.folder = f"{parts[0]}/{parts[1]}"
                indexes.append(idx)
    if not indexes and not broken:
        raise ArchiveError("no lambdaslim index in this zip (not made by `lambdaslim pack`)", path)
    python = {"lambdaslim_bytes": own_bytes, "vendor_bytes": vendor_bytes, "vendor_versions": versions}
    return indexes, os.path.getsize(path), unzipped, python


_VENDOR = "python/lambdaslim/_vendor/"
MAX_INDEX_BYTES = _schema.MAX_INDEX_BYTES


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, limit: int) -> bytes:
    """At most ``limit`` bytes of a member, whatever its header claims; zip errors are ours."""
    try:
        with zf.open(info) as fh:
            data = fh.read(limit + 1)
    except Exception as exc:  # encrypted, unknown compression, corrupt stream...
        raise ArchiveError(f"cannot read {info.filename}: {type(exc).__name__}: {exc}", where) from None
    if len(data) > limit:
        raise ArchiveError(f"{info.filename} is over {limit} bytes; refused", where)
    return data


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


def packed_layer(path: str) -> tuple[int, dict[str, Any]]:
    """(unzipped bytes, python/ section) of a layer ``pack`` just wrote: one read of its zip."""
    indexes, _, unzipped, python = read_layer_zip(path)
    dists = [{"name": u.name, "version": u.version, "import_names": u.import_names}
             for idx in indexes for u in idx.units]
    return unzipped, _runtime_section(python, dists)


def report(path: str) -> dict[str, Any]:
    """The stable machine-readable description printed by ``inspect --json``."""
    broken: list[dict[str, str]] = []
    indexes, zip_bytes, unzipped, python = read_layer_zip(path, broken)
    dists: list[dict[str, Any]] = []
    shadowed = _shadowed(indexes)
    for idx in indexes:
        for u in idx.units:
            if id(u) in shadowed:
                continue
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
        "broken_layers": broken,
        "shadowed": list(shadowed.values()),
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
            "no_broken_layers": not broken,
        },
    }


def _shadowed(indexes: list[_format.LayerIndex]) -> dict[int, dict[str, str]]:
    """Units another layer's copy of the same distribution wins over (the runtime's rule)."""
    from .._runtime._discover import Found, one_copy_each

    found = [Found(i.folder, 0, index=i, unit=u) for i in indexes for u in i.units]
    one_copy_each(found)
    out = {}
    for f in found:
        if f.shadowed_by is not None and f.unit is not None:
            out[id(f.unit)] = {"name": f.unit.name, "version": f.unit.version, "layer": f.source,
                               "used_instead": f.shadowed_by.source}
    return out


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
    for b in data["broken_layers"]:
        lines.append(f"BROKEN layer {b['layer']}: set aside at run time: {b['error']}")
    for d in data["shadowed"]:
        lines.append(f"shadowed: {d['name']} {d['version']} in {d['layer']} is never used "
                     f"(the copy in {d['used_instead']} wins)")
    lines += ["", *render_runtime(data["runtime"])]
    lines += [
        "",
        f"layer zip            {_limits.against(t['layer_zip_bytes'], lim['direct_upload_zip_bytes']):>10}   direct upload limit "
        f"{_limits.show(lim['direct_upload_zip_bytes'])}: {check(c['fits_direct_upload'])}"
        + ("" if c["fits_direct_upload"] else " (upload it through S3)"),
        f"layer unzipped       {_limits.against(t['layer_unzipped_bytes'], lim['layers_unzipped_bytes']):>10}   all layers limit "
        f"{_limits.show(lim['layers_unzipped_bytes'])}: {check(c['fits_unzipped_limit'])}",
        f"/tmp, all extracted  {_limits.against(t['tmp_needed_bytes'], lim['default_tmp_bytes']):>10}   default /tmp "
        f"{_limits.show(lim['default_tmp_bytes'])}: {check(c['fits_default_tmp'])}"
        + ("" if c["fits_default_tmp"] else
           f" (set EphemeralStorage to at least {-(-t['tmp_needed_bytes'] * 12 // 10 // (1024 * 1024))} MB"
           " or rely on lazy extraction and release())"),
        f"  .py/.pyc ({format_size(t['memory_bytes'])}) are read from the layer into memory (at most "
        f"LAMBDASLIM_CODE_CACHE held); LAMBDASLIM_PYTHON=disk needs {format_size(t['tmp_needed_disk_mode_bytes'])} of /tmp",
    ]
    return "\n".join(lines)


def render_runtime(rt: dict[str, Any]) -> list[str]:
    """The report's python/ lines (``inspect`` and ``pack``): sizes and what the function imports."""
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
