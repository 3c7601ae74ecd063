"""Over a limit, a plan: the largest distributions and what each way out would save.

When the layer is over its unzipped limit or a full extraction needs more /tmp than the
function's EphemeralStorage, the report lists the distributions that weigh most with what
``--stub NAME`` (all of it), ``--strip`` (the debug and symbol sections of its libraries, read
from their ELF section headers) and ``--split N`` would save, so the way under is visible.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from . import _limits
from .._size import format_size

_SHF_ALLOC = 0x2
_SHT_NOBITS = 8


def strippable_bytes(path: str) -> int:
    """Bytes of an ELF file in sections the loader never maps (symbols, debug info): about
    what ``strip`` removes. 0 for anything that is not a readable 64-bit ELF file."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
                return 0
            end = "<" if head[5] == 1 else ">"
            shoff, = struct.unpack_from(end + "Q", head, 0x28)
            shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", head, 0x3A)
            if not shoff or shentsize < 64 or shnum == 0:
                return 0
            fh.seek(shoff)
            table = fh.read(shentsize * shnum)
    except OSError:
        return 0
    total = 0
    for i in range(min(shnum, len(table) // shentsize)):
        _name, kind, flags, _addr, _offset, size = struct.unpack_from(end + "IIQQQQ", table, i * shentsize)
        if i != shstrndx and not flags & _SHF_ALLOC and kind != _SHT_NOBITS and kind != 0:
            total += size
    return total


@dataclass
class Row:
    name: str
    packed: int  # bytes in the layer
    extracted: int  # bytes in /tmp once extracted
    strip: int  # about what --strip saves in /tmp (0 when already stripped)


def rows(tree: str, units: list[tuple[str, list[str]]], packed: dict[str, int]) -> list[Row]:
    """One row per distribution (name, its files), largest in the layer first."""
    out: list[Row] = []
    for name, files in units:
        extracted = 0
        strip = 0
        for rel in files:
            full = os.path.join(tree, rel)
            extracted += os.path.getsize(full)
            if ".so" in rel.rpartition("/")[2]:
                strip += strippable_bytes(full)
        out.append(Row(name, packed.get(name, 0), extracted, strip))
    return sorted(out, key=lambda r: -r.packed)


def render(plan: list[Row], *, layer_bytes: int, layer_limit: int, tmp_bytes: int,
           tmp_limit: int, stripped: bool, gpu_kept: bool, top: int = 8) -> list[str]:
    """The report's "way under the limit" section."""
    lines = ["", f"way under the limit (layer {_limits.against(layer_bytes, layer_limit)} of "
                 f"{_limits.show(layer_limit)}, /tmp {_limits.against(tmp_bytes, tmp_limit)} of "
                 f"{_limits.show(tmp_limit)}); largest distributions:"]
    width = max([len(r.name) for r in plan[:top]] + [12])
    lines.append(f"  {'distribution':<{width}}  {'in layer':>9}  {'in /tmp':>9}  what would save it")
    for r in plan[:top]:
        ways = [f"--stub {r.name}: -{format_size(r.packed)} layer, -{format_size(r.extracted)} /tmp"]
        if r.strip and not stripped:
            ways.append(f"--strip: about -{format_size(r.strip)} /tmp")
        lines.append(f"  {r.name:<{width}}  {format_size(r.packed):>9}  {format_size(r.extracted):>9}  "
                     + "; ".join(ways))
    total = sum(r.packed for r in plan)
    if layer_bytes > layer_limit:
        need = -(-layer_bytes // layer_limit)
        if layer_bytes <= _limits.UNZIPPED_LAYERS:
            lines.append(f"  --split {need}: {need} layers of about {format_size(layer_bytes // need)} each")
        else:
            lines.append(f"  --split does not help: all the layers of one function share AWS's "
                         f"{_limits.show(_limits.UNZIPPED_LAYERS)}")
        over = layer_bytes - layer_limit
        chosen, saved = [], 0
        for r in plan:
            if saved >= over:
                break
            chosen.append(r.name)
            saved += r.packed
        if saved >= over and chosen and total:
            lines.append(f"  smallest way under by stubbing the largest: "
                         + " ".join(f"--stub {n}" for n in chosen) + f" (-{format_size(saved)})")
    if gpu_kept:
        lines.append("  --keep-gpu kept CUDA libraries that Lambda cannot use: drop --keep-gpu")
    return lines
