"""Writing extracted files safely: the open flags and the write loop both extractors share."""

from __future__ import annotations

import os

# New files only (O_EXCL), never through a symlink (O_NOFOLLOW), not inherited by children.
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def write_all(fd: int, data: memoryview, path: str = "") -> None:
    """Write every byte of ``data`` (``os.write`` may write less than asked).

    A disk error (ENOSPC, EIO...) is raised as an OSError that names ``path``.
    """
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror} (writing {path})", path) from None
