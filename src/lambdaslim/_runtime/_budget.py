"""The /tmp storage budget: one object that extraction, the S3 disk cache and scratch share.

Layout of the extraction root (default ``/tmp/lambdaslim``)::

    units/<key>/            published package trees (each holds a completion marker)
    staging/<key>.stage<owner>.*  trees being written (never imported; swept when orphaned)
    cache/<ns>/<entry>/     cache entries, evicted oldest-first when an extraction needs room
    scratch/<name>/         per-invocation scratch folders
    reserve/<owner>.<id>    bytes promised to writes under way
    locks/                  file locks

The budget counts what lambdaslim itself holds there, the file system's free space, and an
optional cap (``LAMBDASLIM_TMP_LIMIT``) that makes a big disk behave like Lambda's 512 MB /tmp.
``<owner>`` is ``<pid>-<process start time>``: a reused pid is not mistaken for the process
that left a file behind, and anything in staging/ or reserve/ whose owner is not a live
process (whatever its name) is swept. A write asks :meth:`Budget.reserve` first; when the bytes do not fit it evicts caches and, if
that is not enough, raises :class:`~lambdaslim.StorageBudgetError` before writing anything.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import stat
import threading
from collections.abc import Iterator
from typing import TypedDict

from . import _config
from ._errors import StorageBudgetError

MARKER = ".lambdaslim-complete"
_SEQ = itertools.count()


class Usage(TypedDict):
    """Bytes per category in the extraction root's file system, and the limit."""

    packages: int
    caches: int
    scratch: int
    reserved: int
    other: int
    free: int
    limit: int
    root: str


def tree_bytes(path: str) -> int:
    """Bytes a folder occupies on disk (allocated blocks, as ``du`` counts them)."""
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = os.scandir(current)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (left-overs of dead processes are swept by this)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


MAX_PID = 1 << 22  # the kernel's pid_max ceiling
_owner: tuple[int, str] | None = None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read(4096)
        return data.rpartition(b")")[2].split()[19].decode("ascii")
    except (OSError, IndexError, UnicodeError):
        return None


def owner() -> str:
    """This process as named in staging/ and reserve/: ``<pid>-<start time>``."""
    global _owner
    pid = os.getpid()
    if _owner is None or _owner[0] != pid:  # computed again after a fork
        start = _start_time(pid)
        _owner = (pid, f"{pid}-{start}" if start else str(pid))
    return _owner[1]


def owner_alive(token: str) -> bool:
    """Whether ``token`` (see :func:`owner`) names a live process; False for anything odd."""
    pid_text, dash, start = token.partition("-")
    if not pid_text.isdigit() or len(pid_text) > 7 or not 0 < int(pid_text) < MAX_PID:
        return False
    pid = int(pid_text)
    if token == owner():
        return True
    if pid == os.getpid() or not pid_alive(pid):
        return False  # our pid with another start (or none): left by a process that had it before
    if not dash:
        return True  # an old-style name of a live pid: cannot tell, keep it
    actual = _start_time(pid)
    return actual is None or actual == start


def read_small(path: str, limit: int = 1 << 16) -> bytes:
    """The bytes of a small regular file; never blocks on a FIFO or follows a symlink."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"not a regular file: {path}")
        return os.read(fd, limit)
    finally:
        os.close(fd)


def write_small(path: str, text: str) -> None:
    """Create ``path`` holding ``text``; a disk error (ENOSPC at close too) names the path."""
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        if exc.filename:
            raise
        raise OSError(exc.errno, f"{exc.strerror} (writing {path})", path) from None


def remove(path: str) -> None:
    """Delete a file or folder tree (whatever it is), ignoring what is already gone."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


class Budget:
    """What may still be written under ``root``. Safe across threads and processes."""

    def __init__(self, root: str | None = None, limit: int | None = None) -> None:
        self.root = os.path.abspath(root or _config.extraction_root())
        self.explicit_limit = limit if limit is not None else _config.tmp_limit()
        self._thread_lock = threading.RLock()

    # -- places ------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        """A path under the root (folders are not created)."""
        return os.path.join(self.root, *parts)

    def ensure_dirs(self) -> None:
        for sub in ("units", "staging", "cache", "scratch", "reserve", "locks"):
            os.makedirs(self.path(sub), exist_ok=True)

    def lock(self, name: str = "budget", timeout: float = -1) -> contextlib.AbstractContextManager[object]:
        """An inter-process file lock named ``name`` under ``locks/`` (filelock imported lazily)."""
        from ._deps import filelock

        os.makedirs(self.path("locks"), exist_ok=True)
        lock: contextlib.AbstractContextManager[object] = filelock().FileLock(
            self.path("locks", name + ".lock"), timeout=timeout, thread_local=False)
        return lock

    # -- measuring ----------------------------------------------------------------------
    def _statvfs(self) -> tuple[int, int]:
        probe = self.root
        while not os.path.exists(probe):
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        st = os.statvfs(probe)
        return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize

    def capacity(self) -> int:
        """The file system's size, or the explicit limit when that is lower."""
        total, _ = self._statvfs()
        return min(total, self.explicit_limit) if self.explicit_limit is not None else total

    def packages_bytes(self) -> int:
        """Bytes held by published package trees, from their markers (no tree walk)."""
        total = 0
        try:
            keys = os.listdir(self.path("units"))
        except FileNotFoundError:
            return 0
        for key in keys:
            try:
                total += int(json.loads(read_small(self.path("units", key, MARKER))).get("disk_bytes", 0))
            except (OSError, ValueError, TypeError, AttributeError, RecursionError):
                total += tree_bytes(self.path("units", key))
        return total

    def reserved_bytes(self, sweep: bool = False) -> int:
        total = 0
        try:
            names = os.listdir(self.path("reserve"))
        except FileNotFoundError:
            return 0
        for name in names:
            full = self.path("reserve", name)
            if sweep and not owner_alive(name.split(".", 1)[0]):
                remove(full)
                continue
            try:
                total += max(0, int(read_small(full, 32) or 0))
            except (OSError, ValueError):
                continue
        return total

    def usage(self) -> Usage:
        """Bytes per category (packages, caches, scratch, reserved, other, free) and the limit."""
        packages = self.packages_bytes()
        caches = tree_bytes(self.path("cache"))
        scratch = tree_bytes(self.path("scratch"))
        reserved = self.reserved_bytes()  # covers trees being written in staging/
        total, fs_free = self._statvfs()
        ours = packages + caches + scratch
        other = max(0, total - fs_free - ours)
        if self.explicit_limit is not None and self.explicit_limit < total:
            other = 0  # a cap on a shared disk counts only what lambdaslim wrote
        return Usage(
            packages=packages,
            caches=caches,
            scratch=scratch,
            reserved=reserved,
            other=other,
            free=self._available(ours, reserved, total, fs_free),
            limit=self.capacity(),
            root=self.root,
        )

    def _available(self, ours: int, reserved: int, total: int, fs_free: int) -> int:
        free = fs_free - reserved
        if self.explicit_limit is not None:
            free = min(free, self.explicit_limit - ours - reserved)
        return max(0, free)

    def available(self) -> int:
        """Bytes that may still be written under the root.

        Trees being written in staging/ are not walked (that would cost a walk of thousands of
        files per reservation during a parallel extraction): their reservations count instead.
        """
        total, fs_free = self._statvfs()
        ours = self.packages_bytes() + tree_bytes(self.path("cache")) + tree_bytes(self.path("scratch"))
        return self._available(ours, self.reserved_bytes(), total, fs_free)

    # -- making room ---------------------------------------------------------------------
    def cache_entries(self) -> list[tuple[float, str, int]]:
        """Every cache entry as (last use, path, bytes), oldest first."""
        entries: list[tuple[float, str, int]] = []
        cache = self.path("cache")
        try:
            namespaces = os.listdir(cache)
        except FileNotFoundError:
            return entries
        for ns in namespaces:
            ns_dir = os.path.join(cache, ns)
            try:
                names = os.listdir(ns_dir)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                if name.startswith("."):
                    continue  # staging of a cache entry being written
                full = os.path.join(ns_dir, name)
                try:
                    mtime = os.stat(full).st_mtime
                except FileNotFoundError:
                    continue
                entries.append((mtime, full, tree_bytes(full)))
        entries.sort()
        return entries

    def evict_caches(self, nbytes: int) -> int:
        """Delete cache entries, least recently used first, until ``nbytes`` are freed."""
        freed = 0
        for _, full, size in self.cache_entries():
            if freed >= nbytes:
                break
            shutil.rmtree(full, ignore_errors=True)
            freed += size
        return freed

    @contextlib.contextmanager
    def reserve(self, what: str, nbytes: int, *, evict: bool = True) -> Iterator[None]:
        """Promise ``nbytes`` to a write for the duration of the ``with`` block.

        Raises :class:`StorageBudgetError` (nothing written) when the bytes do not fit even
        after evicting caches. Reservations of killed processes are swept.
        """
        self.ensure_dirs()
        name = f"{owner()}.{threading.get_ident()}.{next(_SEQ)}"
        with self._thread_lock, self.lock("budget"):
            self.reserved_bytes(sweep=True)
            available = self.available()
            if available < nbytes and evict:
                self.evict_caches(nbytes - available)
                available = self.available()
            if available < nbytes:
                raise StorageBudgetError(what, nbytes, available, self.capacity(), self.root)
            write_small(self.path("reserve", name), str(nbytes))
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path("reserve", name))


_budgets: dict[tuple[str, int | None], Budget] = {}
_budgets_lock = threading.Lock()


def get_budget(root: str | None = None) -> Budget:
    """The process-wide budget for ``root`` (default: ``LAMBDASLIM_TMP``), created once."""
    resolved = os.path.abspath(root or _config.extraction_root())
    key = (resolved, _config.tmp_limit())
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = Budget(resolved, key[1])
        return budget
