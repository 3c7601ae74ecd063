"""A size-limited /tmp for tests: a real tmpfs in a private mount namespace, or the budget.

Lambda's /tmp is a file system of exactly the function's EphemeralStorage size: a write past
it fails with ENOSPC. To test against that locally the process moves into its own mount
namespace — as root with ``unshare(CLONE_NEWNS)``, otherwise through an unprivileged user
namespace (``CLONE_NEWUSER``, the same uid mapped to itself) — and mounts a tmpfs of the
given size there. The mount is invisible to the rest of the machine and disappears with the
process; child processes (a runtime, a fresh interpreter) inherit it.

The namespace is per *thread* for a process that already runs several threads (the others
would keep writing to the real disk under the mount point), so it is entered only while the
process is single-threaded, once. Where any of this is impossible (not Linux, no namespace
support, threads already running) :func:`enter_private_namespace` says why, and callers
fall back to the storage budget enforcing the limit (``LAMBDASLIM_TMP_LIMIT``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_NOSUID = 2
MS_NODEV = 4
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

_state: dict[str, str | None] = {}  # "result": None when entered, else the reason it failed


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _check(result: int, what: str, path: str | None = None) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def enter_private_namespace() -> str | None:
    """Move this process into a private mount namespace, once; None, or why it cannot."""
    if "result" in _state:
        return _state["result"]
    reason: str | None = None
    if not sys.platform.startswith("linux"):
        reason = f"mount namespaces need Linux, not {sys.platform}"
    elif thread_count() > 1:
        reason = (
            f"the process already runs {thread_count()} threads; a mount namespace entered now "
            "would hold only one of them"
        )
    else:
        try:
            libc = _libc()
            entered = False
            if os.geteuid() == 0:
                # Root without CAP_SYS_ADMIN (a default container) falls through to a user namespace.
                entered = libc.unshare(CLONE_NEWNS) == 0
            if not entered:
                uid, gid = os.geteuid(), os.getegid()
                _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
                with open("/proc/self/uid_map", "w", encoding="ascii") as fh:
                    fh.write(f"{uid} {uid} 1\n")
                with open("/proc/self/setgroups", "w", encoding="ascii") as fh:
                    fh.write("deny")
                with open("/proc/self/gid_map", "w", encoding="ascii") as fh:
                    fh.write(f"{gid} {gid} 1\n")
            # Mount events must not travel back to the machine's namespace.
            _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
        except OSError as exc:
            reason = str(exc.strerror or exc)
    _state["result"] = reason
    return reason


def mount_tmpfs(path: str, size: int) -> None:
    """Mount a tmpfs of ``size`` bytes on the (existing, empty) folder ``path``."""
    reason = enter_private_namespace()
    if reason is not None:
        raise OSError(f"cannot mount a private tmpfs: {reason}")
    options = f"size={size},mode=0700,uid={os.geteuid()},gid={os.getegid()}"
    _check(
        _libc().mount(b"tmpfs", os.fsencode(path), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode()),
        "mount tmpfs",
        path,
    )


def unmount(path: str) -> None:
    """Detach the tmpfs mounted on ``path`` (its files go with it)."""
    _check(_libc().umount2(os.fsencode(path), MNT_DETACH), "umount", path)


def is_mount_point(path: str) -> bool:
    try:
        return os.path.ismount(path)
    except OSError:
        return False
