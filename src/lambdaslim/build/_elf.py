"""Read ELF headers and strip shared libraries without ever shipping a broken one.

``strip --strip-unneeded`` rewrites a file's layout. On libraries that auditwheel patched
with patchelf (numpy's and scipy's bundled OpenBLAS and gfortran) GNU strip leaves PT_LOAD
segments whose file offset and address disagree modulo the page size; the dynamic loader then
refuses them ("ELF load command address/offset not page-aligned"). :func:`strip_libraries`
strips into a copy, checks the copy's program headers against the original's and, when this
machine can run the target architecture, loads each stripped library in a child process; any
library that fails a check keeps its original bytes.
"""

from __future__ import annotations

import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .._errors import LambdaslimError

ELF_MAGIC = b"\x7fELF"
PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3
ET_EXEC = 2
ET_DYN = 3
PAGE_SIZE = 4096  # Lambda's kernels (x86_64 and arm64) use 4 KiB pages

MACHINES = {3: "x86", 62: "x86_64", 40: "arm", 183: "aarch64", 243: "riscv", 21: "ppc64"}
ARCH_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}


class ElfError(LambdaslimError, ValueError):
    """A file is not an ELF file lambdaslim can read (truncated, wrong magic, bad header)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(f"{message}: {path}")
        self.path = path


@dataclass(frozen=True)
class Segment:
    """One program header (only the fields the loader's alignment checks use)."""

    type: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int


@dataclass(frozen=True)
class ElfInfo:
    path: str
    bits: int  # 32 or 64
    little: bool
    type: int  # e_type: 2 executable, 3 shared object / PIE
    machine: int  # e_machine
    segments: tuple[Segment, ...]

    @property
    def machine_name(self) -> str:
        """``x86_64``, ``aarch64``... (the number itself when unknown)."""
        return MACHINES.get(self.machine, str(self.machine))

    @property
    def loads(self) -> tuple[Segment, ...]:
        return tuple(s for s in self.segments if s.type == PT_LOAD)

    @property
    def is_executable(self) -> bool:
        """A program rather than a library: ET_EXEC, or ET_DYN with an interpreter (PIE)."""
        return self.type == ET_EXEC or any(s.type == PT_INTERP for s in self.segments)


def is_elf(path: str) -> bool:
    """True when ``path`` is a regular file starting with the ELF magic."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == ELF_MAGIC
    except OSError:
        return False


def read_elf(path: str) -> ElfInfo:
    """Parse the ELF header and program headers of ``path``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if len(head) < 52 or head[:4] != ELF_MAGIC:
                raise ElfError("not an ELF file", path)
            bits = {1: 32, 2: 64}.get(head[4])
            if bits is None or head[5] not in (1, 2):
                raise ElfError("unknown ELF class or byte order", path)
            little = head[5] == 1
            e = "<" if little else ">"
            e_type, e_machine = struct.unpack_from(e + "HH", head, 16)
            if bits == 64:
                phoff, = struct.unpack_from(e + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(e + "HH", head, 54)
                fmt, need = e + "IIQQQQQQ", 56
            else:
                phoff, = struct.unpack_from(e + "I", head, 28)
                phentsize, phnum = struct.unpack_from(e + "HH", head, 42)
                fmt, need = e + "IIIIIIII", 32
            if phnum and phentsize < need:
                raise ElfError("program header entries too small", path)
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
            if len(table) < phentsize * phnum:
                raise ElfError("truncated program header table", path)
    except OSError as exc:
        raise ElfError(f"cannot read ({exc.strerror})", path) from None
    segments = []
    for i in range(phnum):
        raw = struct.unpack_from(fmt, table, i * phentsize)
        if bits == 64:
            p_type, _flags, off, vaddr, _paddr, filesz, memsz, align = raw
        else:
            p_type, off, vaddr, _paddr, filesz, memsz, _flags, align = raw
        segments.append(Segment(p_type, off, vaddr, filesz, memsz, align))
    return ElfInfo(path, bits, little, e_type, e_machine, tuple(segments))


def load_problems(info: ElfInfo, page_size: int = PAGE_SIZE) -> list[str]:
    """What the dynamic loader would refuse in ``info``'s PT_LOAD segments (empty: fine).

    glibc checks that each segment's address and file offset agree modulo the page size and
    that its alignment is a multiple of the page size.
    """
    problems = []
    for n, seg in enumerate(info.loads):
        if (seg.vaddr - seg.offset) % page_size:
            problems.append(
                f"PT_LOAD #{n}: offset {seg.offset:#x} and address {seg.vaddr:#x} differ "
                f"modulo the page size {page_size:#x}")
        if seg.align > 1 and seg.align % page_size:
            problems.append(f"PT_LOAD #{n}: alignment {seg.align:#x} is not page-aligned")
        if seg.filesz > seg.memsz:
            problems.append(f"PT_LOAD #{n}: file size exceeds memory size")
    return problems


def compare_layout(original: ElfInfo, stripped: ElfInfo, page_size: int = PAGE_SIZE) -> list[str]:
    """Problems of ``stripped`` as a replacement for ``original`` (empty list: safe).

    The stripped file must load (no new alignment problem), keep the machine, and map the same
    memory: same PT_LOAD count and addresses, no segment larger, the dynamic section inside
    a loaded segment; where the original's offsets agreed
    with its addresses modulo its own (larger) alignment, for 64 KiB-page kernels, so must the
    stripped file's.
    """
    problems = [p for p in load_problems(stripped, page_size) if p not in load_problems(original, page_size)]
    if stripped.machine != original.machine or stripped.bits != original.bits:
        problems.append("machine or class changed")
    a, b = original.loads, stripped.loads
    if len(a) != len(b):
        problems.append(f"PT_LOAD count changed from {len(a)} to {len(b)}")
        return problems
    for n, (sa, sb) in enumerate(zip(a, b)):
        if sa.vaddr != sb.vaddr or sb.memsz > sa.memsz:
            problems.append(f"PT_LOAD #{n}: mapping moved or grew")
        big = sa.align
        if big > page_size and (sa.vaddr - sa.offset) % big == 0 and (sb.vaddr - sb.offset) % big:
            problems.append(f"PT_LOAD #{n}: offset no longer agrees with address modulo {big:#x}")
    for dyn in (s for s in stripped.segments if s.type == PT_DYNAMIC):
        if not any(l.vaddr <= dyn.vaddr and dyn.vaddr + dyn.memsz <= l.vaddr + l.memsz
                   and l.offset <= dyn.offset and dyn.offset + dyn.filesz <= l.offset + l.filesz
                   for l in b):
            problems.append("dynamic section is not inside a loaded segment")
    return problems


def host_machine() -> str:
    """The ELF machine name of this interpreter's platform (``x86_64``, ``aarch64``...)."""
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def strip_tool(machine: str) -> list[str] | None:
    """A strip command that understands ``machine``'s ELF files, or None.

    GNU strip only reads the host's architecture; ``<triplet>-strip`` or ``llvm-strip`` (which
    reads all) cover cross builds.
    """
    candidates = []
    if machine == host_machine():
        candidates.append("strip")
    candidates += [f"{machine}-linux-gnu-strip", "llvm-strip"]
    candidates += [f"llvm-strip-{v}" for v in range(20, 10, -1)]
    for name in candidates:
        found = shutil.which(name)
        if found:
            return [found]
    return None


@dataclass
class StripResult:
    """What :func:`strip_libraries` did to each library."""

    stripped: dict[str, int] = field(default_factory=dict)  # path -> bytes saved
    kept: dict[str, str] = field(default_factory=dict)  # path -> why the original was kept
    loaded: int = 0  # stripped libraries that a child process loaded successfully
    tool: str = ""

    @property
    def saved_bytes(self) -> int:
        return sum(self.stripped.values())


_LOAD_SCRIPT = r"""
import ctypes, sys
for path in sys.argv[1:]:
    try:
        ctypes.CDLL(path, mode=getattr(ctypes, "RTLD_LOCAL", 0))
    except OSError as exc:
        print("FAIL", path, str(exc).replace("\n", " "), flush=True)
    else:
        print("OK", path, flush=True)
"""


def _load_check(paths: list[str], python: str) -> dict[str, str | None]:
    """Load each library in a child process: path -> None when it loaded, else the error.

    One child loads them all; if it dies (a constructor crashing), each remaining library is
    tried in a child of its own so one bad file cannot hide the others' results.
    """
    results: dict[str, str | None] = {}
    pending = list(paths)
    while pending:
        proc = subprocess.run([python, "-c", _LOAD_SCRIPT, *pending], capture_output=True,
                              text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        for line in proc.stdout.splitlines():
            status, _, rest = line.partition(" ")
            path, _, err = rest.partition(" ")
            if path in pending and path not in results:
                results[path] = None if status == "OK" else (err or "failed to load")
        rest_paths = [p for p in pending if p not in results]
        if not rest_paths:
            break
        # the child died on the first path it had not answered for
        culprit = rest_paths[0]
        results[culprit] = f"loading killed the process (exit {proc.returncode})"
        pending = rest_paths[1:]
    return results


def strip_libraries(
    paths: Iterable[str],
    *,
    machine: str,
    load_check: bool | None = None,
    python: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> StripResult:
    """Strip each ELF library in ``paths`` in place, keeping the original wherever in doubt.

    ``machine`` is the target's ELF machine name (``x86_64``/``aarch64``). A library is
    replaced only when strip succeeded, it got smaller, :func:`compare_layout` finds nothing
    wrong and, when ``load_check`` (default: when the host runs ``machine``), a child process
    loads it. ``python`` is the interpreter used to load (default: this one).
    """
    result = StripResult()
    tool = strip_tool(machine)
    paths = [p for p in paths if is_elf(p)]
    if tool is None:
        for p in paths:
            result.kept[p] = f"no strip tool for {machine} (install binutils or llvm)"
        return result
    result.tool = tool[0]
    if load_check is None:
        load_check = machine == host_machine()
    backups: dict[str, str] = {}  # path -> original bytes
    copies: dict[str, str] = {}  # path -> stripped bytes
    with tempfile.TemporaryDirectory(prefix="lambdaslim-strip-") as scratch:
        for n, path in enumerate(paths):
            if progress is not None:
                progress(path)
            try:
                original = read_elf(path)
            except ElfError as exc:
                result.kept[path] = str(exc)
                continue
            if original.machine_name != machine:
                result.kept[path] = f"ELF machine {original.machine_name}, not {machine}"
                continue
            out = os.path.join(scratch, f"{n}.so")
            proc = subprocess.run([*tool, "--strip-unneeded", "-o", out, path],
                                  capture_output=True, text=True)
            if proc.returncode != 0 or not os.path.exists(out):
                result.kept[path] = f"strip failed: {(proc.stderr or proc.stdout).strip()[:200]}"
                continue
            before, after = os.path.getsize(path), os.path.getsize(out)
            if after >= before:
                os.unlink(out)
                continue  # nothing to gain
            try:
                problems = compare_layout(original, read_elf(out))
            except ElfError as exc:
                problems = [str(exc)]
            if problems:
                result.kept[path] = "stripped copy would not load: " + "; ".join(problems)
                os.unlink(out)
                continue
            backup = os.path.join(scratch, f"{n}.orig")
            shutil.copy2(path, backup)
            shutil.copyfile(out, path)
            backups[path] = backup
            copies[path] = out
            result.stripped[path] = before - after
        if load_check and backups:
            _check_loads(result, backups, copies, python or sys.executable)
    return result


def _check_loads(result: StripResult, backups: dict[str, str], copies: dict[str, str],
                 python: str) -> None:
    """Load every stripped library; revert those that fail where their original loads.

    A library loads its dependencies too, so a broken dependency fails its dependants: after
    reverting the failures the rest is checked again. A library whose original does not load
    either (an extension for another Python version, a dependency outside the tree) gives no
    verdict and keeps its stripped copy, which already passed the program-header checks.
    """
    candidates = list(backups)
    for _round in range(4):
        failures = {p: e for p, e in _load_check(candidates, python).items() if e}
        if not failures:
            break
        for p in failures:
            shutil.copyfile(backups[p], p)
        original_errors = _load_check(list(failures), python)
        verdict = False
        for p, err in failures.items():
            if original_errors.get(p):
                shutil.copyfile(copies[p], p)  # inconclusive: the original fails too
            else:
                verdict = True
                del result.stripped[p]
                result.kept[p] = f"stripped copy failed to load: {err}"
        candidates = [p for p in candidates if p not in failures]
        if not verdict or not candidates:
            break
    result.loaded = len(candidates)
