"""Plain ``*.zip`` bundles holding a site-packages tree (the older zip-in-layer trick).

The seed's ``pytorch.zip`` and serverless-python-requirements' ``.requirements.zip`` work
unchanged: each bundle is extracted as one unit, with the same safety as packed layers (no
absolute paths, no ``..``, no symlinks, CRCs checked, nothing written outside the tree, never
more bytes than the central directory declares). Whatever is wrong with a bundle (encrypted
or oddly compressed members, bad names, a truncated file) raises :class:`ArchiveError`.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile

from ._errors import ArchiveError
from ._files import CREATE, write_all
from ._format import BLOCK, check_relpath
from ._names import import_names

# zipfile fails on hostile input with many types: RuntimeError (encrypted), NotImplementedError
# (unknown compression), EOFError (truncated), zlib.error, struct.error, ValueError... Every
# one of them means "this bundle is unusable", so all become ArchiveError (real disk errors
# that name a path stay OSError).
_ZIP_ERRORS = (Exception,)


class ZipBundle:
    """What the finder needs to know of one zip bundle, read from its central directory."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
        except RecursionError:
            raise ArchiveError("not a readable zip bundle: nested too deeply", path) from None
        except _ZIP_ERRORS as exc:
            raise ArchiveError(f"not a readable zip bundle: {type(exc).__name__}: {exc}", path) from None
        h = hashlib.sha256()
        files: list[str] = []
        self.sizes: list[tuple[str, int]] = []
        disk = 0
        dirs: set[str] = set()
        dist_infos: list[str] = []
        for info in infos:
            h.update(f"{info.filename}\0{info.CRC}\0{info.file_size}\n".encode())
            name = info.filename.rstrip("/")
            if info.is_dir():
                continue
            files.append(name)
            self.sizes.append((name, info.file_size))
            disk += -(-info.file_size // BLOCK) * BLOCK
            parent = name.rpartition("/")[0]
            while parent and parent not in dirs:
                dirs.add(parent)
                parent = parent.rpartition("/")[0]
            top = name.split("/")[0]
            if top.endswith(".dist-info") and name.endswith("/METADATA"):
                dist_infos.append(top)
        base = os.path.basename(path)
        self.sha256 = h.hexdigest()
        self.name = base
        self.version = "zip"
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in base.lstrip("."))
        self.key = f"zip-{safe}-{self.sha256[:12]}"
        self.import_names = import_names(files)
        self.unpacked_bytes = sum(i.file_size for i in infos)
        self.disk_bytes = disk + len(dirs) * BLOCK
        self.files_count = len(files)
        self.dist_infos = sorted(dist_infos)

    def extract(self, dest: str) -> int:
        """Write every member under the new folder ``dest``; hostile members raise ArchiveError."""
        written = 0
        try:
            with zipfile.ZipFile(self.path) as zf:
                for info in zf.infolist():
                    name = info.filename
                    mode = (info.external_attr >> 16) & 0xFFFF
                    if stat.S_ISLNK(mode):
                        raise ArchiveError(f"symbolic link {name!r} in zip bundle", self.path)
                    rel = name.rstrip("/")
                    if not rel:
                        continue
                    check_relpath(rel, self.path)
                    target = os.path.join(dest, rel)
                    if info.is_dir():
                        os.makedirs(target, exist_ok=True)
                        continue
                    parent = os.path.dirname(target)
                    if parent:
                        os.makedirs(parent, exist_ok=True)
                    fd = os.open(target, CREATE, 0o755 if mode & 0o111 else 0o644)
                    try:
                        left = info.file_size
                        with zf.open(info) as src:
                            while chunk := src.read(min(1 << 20, left + 1)):
                                if len(chunk) > left:
                                    raise ArchiveError(f"member {rel!r} holds more than it declares", self.path)
                                write_all(fd, memoryview(chunk), target)
                                written += len(chunk)
                                left -= len(chunk)
                    finally:
                        os.close(fd)
        except ArchiveError:
            raise
        except FileExistsError as exc:
            raise ArchiveError(f"zip bundle writes {exc.filename} twice", self.path) from None
        except (NotADirectoryError, IsADirectoryError) as exc:
            raise ArchiveError(f"conflicting paths at {exc.filename} in zip bundle", self.path) from None
        except OSError as exc:
            if exc.filename is not None and exc.errno is not None:
                raise  # a real disk error (ENOSPC...) that names its path
            raise ArchiveError(f"corrupt zip bundle: {type(exc).__name__}: {exc}", self.path) from None
        except RecursionError:
            raise ArchiveError("corrupt zip bundle: nested too deeply", self.path) from None
        except _ZIP_ERRORS as exc:
            raise ArchiveError(f"corrupt zip bundle: {type(exc).__name__}: {exc}", self.path) from None
        return written
