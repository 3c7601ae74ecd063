"""Writing extracted files safely: the open flags and the write loop both extractors share."""

from __future__ import annotations

import os

# New files only (O_EXCL), never through a symlink (O_NOFOLLOW), not inherited by children.
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def write_all(fd: int, data: memoryview) -> None:
    """Write every byte of ``data`` (``os.write`` may write less than asked)."""
    while data:
        data = data[os.write(fd, data) :]
