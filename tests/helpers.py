"""Helpers for tests: unzip a layer like Lambda does, compare trees."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path


def unzip_layer(layer_zip: Path, opt: Path) -> Path:
    """Unzip as Lambda does into ``opt`` (keeping permission bits); returns ``opt``."""
    opt.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(layer_zip) as zf:
        for info in zf.infolist():
            target = opt / info.filename
            zf.extract(info, opt)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target, mode)
    return opt


def tree_digest(root: Path, files: list[str]) -> dict[str, tuple[bytes, bool]]:
    """{relpath: (content, executable)} for the given files under root."""
    out = {}
    for rel in files:
        p = root / rel
        out[rel] = (p.read_bytes(), bool(p.stat().st_mode & stat.S_IXUSR))
    return out


def make_dist(site: Path, name: str, version: str, files: dict[str, bytes], *, record: str | None = None) -> None:
    """Write a minimal installed distribution (files + dist-info with METADATA and RECORD)."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    rows = []
    for rel, data in files.items():
        p = site / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        rows.append(f"{rel},,{len(data)}")
    rows.append(f"{dist_info.name}/METADATA,,")
    rows.append(f"{dist_info.name}/RECORD,,")
    (dist_info / "RECORD").write_text(record if record is not None else "\n".join(rows) + "\n")


SRC = Path(__file__).resolve().parents[1] / "src"


def run_in_site(site: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in ``python -S`` seeing only ``site`` and lambdaslim's source (no packing)."""
    return subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = [{str(site)!r}, {str(SRC)!r}]\n{code}"],
                          capture_output=True, text=True)
