"""Warm-start caches of S3 objects: in process memory, or on disk under the extraction root.

Both keep the object's ETag; a later read sends ``IfNoneMatch`` and a 304 costs one small
request, or no request at all while the entry is younger than ``max_age``.

The disk cache ("tmp") lives in the shared storage budget at ``cache/s3/<entry>/``: each
entry is one folder (``data`` and ``meta.json``), written under a "."-prefixed name and
renamed into place, so a reader never sees half an entry. The folder's mtime is its last
use (the budget evicts the oldest first when an extraction needs room); ``meta.json``'s
mtime is when the server last confirmed the ETag. A lock per key (a file lock per stripe of
keys across processes) keeps readers of the same key from downloading it twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from .._runtime._budget import pid_alive
from ._buffer import Buffer, allocate

log = logging.getLogger("lambdaslim.s3")

NAMESPACE = "s3"
ENTRY_OVERHEAD = 3 * 4096  # folder + meta.json + the data file's last block
_FILE_LOCKS = 64  # file locks shared by the keys of one stripe (a bounded set of lock files)
_SEQ = itertools.count()


class KeyLocks:
    """One lock per key, alive while some thread holds or waits for it.

    Threads reading the same key wait for the first one's download; threads reading
    different keys never wait for each other.
    """

    def __init__(self) -> None:
        self._locks: dict[object, list[Any]] = {}  # key -> [lock, users]
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def hold(self, key: object) -> Iterator[None]:
        with self._guard:
            slot = self._locks.setdefault(key, [threading.Lock(), 0])
            slot[1] += 1
        try:
            with slot[0]:
                yield
        finally:
            with self._guard:
                slot[1] -= 1
                if slot[1] == 0:
                    del self._locks[key]


@dataclass(frozen=True)
class CacheKey:
    """What identifies a cached read: server, object, version and byte range."""

    endpoint: str
    bucket: str
    key: str
    version_id: str | None
    byte_range: tuple[int, int | None] | None

    def digest(self) -> str:
        text = json.dumps([self.endpoint, self.bucket, self.key, self.version_id,
                           list(self.byte_range) if self.byte_range else None])
        return hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass
class Entry:
    data: Buffer
    etag: str
    object_size: int
    validated_at: float  # time.time() when the server last confirmed the ETag
    version_id: str | None = None
    content_type: str | None = None
    last_modified: datetime | None = None
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.nbytes = len(self.data)


class StoreStats(TypedDict):
    entries: int
    bytes: int
    hits: int
    revalidated: int
    downloads: int


class MemoryInfo(StoreStats):
    limit: int


class DiskInfo(StoreStats):
    path: str
    skipped: int


class CacheInfo(TypedDict):
    memory: MemoryInfo
    tmp: DiskInfo


def _default_memory_limit() -> int:
    """``LAMBDASLIM_S3_CACHE_MEMORY``, else a quarter of the function's memory, else 512 MB."""
    from .._size import parse_size

    text = os.environ.get("LAMBDASLIM_S3_CACHE_MEMORY", "").strip()
    if text:
        return parse_size(text)
    function_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "").strip()
    if function_mb.isdigit():
        return int(function_mb) * 1_000_000 // 4
    return 512 * 1_000_000


class _Counters:
    """How reads were served since the last :func:`clear_cache`."""

    def __init__(self) -> None:
        self.hits = 0  # served from the cache without a request
        self.revalidated = 0  # the server answered 304
        self.downloads = 0
        self.skipped = 0  # not written to disk: the budget had no room
        self._lock = threading.Lock()

    def add(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)


class MemoryCache:
    """Entries kept in the process, least recently used dropped first beyond ``limit`` bytes."""

    def __init__(self) -> None:
        self._entries: OrderedDict[CacheKey, Entry] = OrderedDict()
        self._bytes = 0
        self._limit: int | None = None
        self._lock = threading.Lock()
        self._key_locks = KeyLocks()
        self.counters = _Counters()

    @property
    def limit(self) -> int:
        if self._limit is None:
            self._limit = _default_memory_limit()
        return self._limit

    def set_limit(self, nbytes: int) -> None:
        with self._lock:
            self._limit = nbytes
            self._shrink()

    @contextlib.contextmanager
    def key_lock(self, ck: CacheKey) -> Iterator[None]:
        """Threads reading the same key wait for the first one instead of downloading too."""
        with self._key_locks.hold(ck):
            yield

    def get(self, ck: CacheKey) -> Entry | None:
        with self._lock:
            entry = self._entries.get(ck)
            if entry is not None:
                self._entries.move_to_end(ck)
            return entry

    def put(self, ck: CacheKey, entry: Entry) -> None:
        with self._lock:
            old = self._entries.pop(ck, None)
            if old is not None:
                self._bytes -= old.nbytes
            if entry.nbytes > self.limit:
                return
            self._entries[ck] = entry
            self._bytes += entry.nbytes
            self._shrink()

    def touch(self, ck: CacheKey, entry: Entry) -> None:
        entry.validated_at = time.time()

    def discard(self, bucket: str, key: str) -> None:
        with self._lock:
            for ck in [c for c in self._entries if c.bucket == bucket and c.key == key]:
                self._bytes -= self._entries.pop(ck).nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self.counters = _Counters()

    def _shrink(self) -> None:
        while self._bytes > self.limit and self._entries:
            _, entry = self._entries.popitem(last=False)
            self._bytes -= entry.nbytes

    def info(self) -> MemoryInfo:
        with self._lock:
            return MemoryInfo(entries=len(self._entries), bytes=self._bytes, limit=self.limit,
                              hits=self.counters.hits, revalidated=self.counters.revalidated,
                              downloads=self.counters.downloads)


class DiskCache:
    """Entries under ``<extraction root>/cache/s3/``, inside the shared storage budget."""

    def __init__(self) -> None:
        self._key_locks = KeyLocks()
        self.counters = _Counters()

    @staticmethod
    def _budget() -> Any:
        from .._runtime._budget import get_budget

        return get_budget()

    def folder(self) -> str:
        return str(self._budget().path("cache", NAMESPACE))

    @contextlib.contextmanager
    def key_lock(self, ck: CacheKey) -> Iterator[None]:
        """A thread lock per key and a file lock per stripe of keys: one download per key at a
        time across threads and processes."""
        stripe = int(ck.digest()[:8], 16) % _FILE_LOCKS
        with self._key_locks.hold(ck), contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self._budget().lock(f"s3-cache-{stripe:02d}"))
            except OSError as exc:  # no usable extraction root: read without the disk cache
                log.warning("S3 disk cache unusable, reading s3://%s/%s without it: %s",
                            ck.bucket, ck.key, exc)
            yield

    def get(self, ck: CacheKey) -> Entry | None:
        entry_dir = os.path.join(self.folder(), ck.digest())
        try:
            meta_path = os.path.join(entry_dir, "meta.json")
            with open(meta_path, encoding="utf-8") as fh:
                meta = json.load(fh)
            validated_at = os.stat(meta_path).st_mtime
            if [meta["endpoint"], meta["bucket"], meta["key"], meta["version_id"]] != [
                    ck.endpoint, ck.bucket, ck.key, ck.version_id]:
                return None
            size = int(meta["nbytes"])
            with open(os.path.join(entry_dir, "data"), "rb", buffering=0) as fh:
                buffer, view = allocate(size)
                with view:
                    got = 0
                    while got < size:
                        n = fh.readinto(view[got:])
                        if not n:
                            raise ValueError("cache entry shorter than recorded")
                        got += n
                if fh.read(1):
                    raise ValueError("cache entry longer than recorded")
            os.utime(entry_dir)  # last use, for the budget's least-recently-used eviction
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing, evicted meanwhile or damaged: a miss
        last_modified = meta.get("last_modified")
        return Entry(
            data=buffer, etag=str(meta["etag"]), object_size=int(meta["object_size"]),
            validated_at=validated_at, version_id=meta.get("object_version_id"),
            content_type=meta.get("content_type"),
            last_modified=datetime.fromisoformat(last_modified) if last_modified else None,
        )

    def put(self, ck: CacheKey, entry: Entry) -> None:
        """Write the entry, or skip it (logged) when the budget has no room for it or the disk
        refuses the write: the read that produced it succeeds all the same."""
        from .._runtime._errors import StorageBudgetError

        budget = self._budget()
        folder = self.folder()
        name = ck.digest()
        self.sweep()  # staging left by killed processes would hold budget space forever
        staging = os.path.join(folder, f".{name}.{os.getpid()}.{threading.get_ident()}.{next(_SEQ)}")
        try:
            with budget.reserve(f"S3 cache of s3://{ck.bucket}/{ck.key}", entry.nbytes + ENTRY_OVERHEAD):
                os.makedirs(staging)
                with open(os.path.join(staging, "data"), "wb") as fh:
                    fh.write(memoryview(entry.data))
                meta = {
                    "endpoint": ck.endpoint, "bucket": ck.bucket, "key": ck.key,
                    "version_id": ck.version_id,
                    "byte_range": list(ck.byte_range) if ck.byte_range else None,
                    "etag": entry.etag, "nbytes": entry.nbytes, "object_size": entry.object_size,
                    "object_version_id": entry.version_id, "content_type": entry.content_type,
                    "last_modified": entry.last_modified.isoformat() if entry.last_modified else None,
                }
                with open(os.path.join(staging, "meta.json"), "w", encoding="utf-8") as fh:
                    json.dump(meta, fh)
                publish_folder(staging, os.path.join(folder, name))
        except (StorageBudgetError, OSError) as exc:
            self.counters.add("skipped")
            log.warning("not caching s3://%s/%s on disk: %s", ck.bucket, ck.key, exc)
        finally:
            if os.path.exists(staging):
                shutil.rmtree(staging, ignore_errors=True)

    def touch(self, ck: CacheKey, entry: Entry) -> None:
        """The server confirmed the ETag (304): record when, in meta.json's mtime."""
        entry.validated_at = time.time()
        with contextlib.suppress(OSError):
            os.utime(os.path.join(self.folder(), ck.digest(), "meta.json"), (entry.validated_at,) * 2)

    def discard(self, bucket: str, key: str) -> None:
        for entry_dir in self._entry_dirs():
            try:
                with open(os.path.join(entry_dir, "meta.json"), encoding="utf-8") as fh:
                    meta = json.load(fh)
            except (OSError, ValueError):
                continue
            if meta.get("bucket") == bucket and meta.get("key") == key:
                shutil.rmtree(entry_dir, ignore_errors=True)

    def _entry_dirs(self) -> list[str]:
        folder = self.folder()
        try:
            names = os.listdir(folder)
        except OSError:  # not created yet, or no usable extraction root
            return []
        return [os.path.join(folder, n) for n in names if not n.startswith(".")]

    def sweep(self) -> None:
        """Remove staging folders left by processes that died while writing."""
        folder = self.folder()
        try:
            names = os.listdir(folder)
        except OSError:  # not created yet, or no usable extraction root
            return
        for name in names:
            parts = name.split(".")
            if name.startswith(".") and len(parts) > 2 and parts[2].isdigit():
                if not pid_alive(int(parts[2])):
                    shutil.rmtree(os.path.join(folder, name), ignore_errors=True)

    def clear(self) -> None:
        for entry_dir in self._entry_dirs():
            shutil.rmtree(entry_dir, ignore_errors=True)
        self.sweep()
        self.counters = _Counters()

    def info(self) -> DiskInfo:
        from .._runtime._budget import tree_bytes

        dirs = self._entry_dirs()
        return DiskInfo(entries=len(dirs), bytes=sum(tree_bytes(d) for d in dirs), path=self.folder(),
                        hits=self.counters.hits, revalidated=self.counters.revalidated,
                        downloads=self.counters.downloads, skipped=self.counters.skipped)


memory_cache = MemoryCache()
disk_cache = DiskCache()


def cache_info() -> CacheInfo:
    """Entries, bytes and hit counts of the memory cache and of the disk ("tmp") cache."""
    return CacheInfo(memory=memory_cache.info(), tmp=disk_cache.info())


def clear_cache(memory: bool = True, tmp: bool = True) -> None:
    """Drop cached objects (the memory cache and/or the disk cache's entries) and their counts."""
    if memory:
        memory_cache.clear()
    if tmp:
        disk_cache.clear()


def publish_folder(staging: str, final: str) -> None:
    """Rename a complete staged folder into place, replacing an older one (its lock held).

    Readers see the old folder or the new one, never a mix; the old one is removed after.
    """
    trash = None
    if os.path.exists(final):
        trash = staging + ".old"
        try:
            os.rename(final, trash)
        except FileNotFoundError:  # evicted meanwhile
            trash = None
    os.rename(staging, final)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
