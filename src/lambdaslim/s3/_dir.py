"""``fetch_dir`` / ``fetch_file``: S3 objects as files on disk, for libraries that want a path.

Each fetched prefix (or object) is one entry of the storage budget's caches,
``<extraction root>/cache/s3dir/<digest>/`` holding ``meta.json`` (the objects' keys, ETags
and sizes; its mtime is when the server last confirmed them) and ``files/`` (what the caller
gets). The entry folder's mtime is its last use, so the budget's least-recently-used eviction
covers these folders like the other cache entries.

A download goes to a "."-prefixed staging folder (never evicted, swept when its process is
gone) and is renamed into place only when every object arrived, so the path returned always
holds one complete, consistent version: unchanged files of the previous version are hard
links, changed ones are downloaded with ``IfMatch`` set to the ETag the listing gave, so an
object overwritten meanwhile raises :class:`ObjectChangedError` and nothing is published.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

from .._runtime._budget import pid_alive
from . import _plan
from ._buffer import FileTarget
from ._cache import KeyLocks, publish_folder
from ._client import endpoint_of, get_client
from ._errors import S3KeyPathError, S3ObjectNotFoundError, S3URLError, translate
from ._fetch import MAX_ATTEMPTS, READ_CHUNK, fetch
from ._url import parse

NAMESPACE = "s3dir"
FILE_OVERHEAD = 4096  # a file's last, partly used block
_SEQ = itertools.count()
_locks = KeyLocks()


class Item(NamedTuple):
    key: str
    etag: str
    size: int


def _parse_prefix(source: str) -> tuple[str, str]:
    if not isinstance(source, str) or not source.startswith("s3://"):
        raise S3URLError(f"not an S3 URL: {source!r} (expected s3://bucket/prefix/)")
    bucket, _, prefix = source[5:].partition("/")
    parse(bucket, "x")  # validates the bucket name
    if prefix and not prefix.endswith("/"):
        prefix += "/"  # "models/bert" is the folder, never "models/bert-large/..."
    return bucket, prefix


def _relative(prefix: str, key: str, bucket: str) -> str:
    rel = key[len(prefix):]
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\0" in rel:
        raise S3KeyPathError(f"s3://{bucket}/{key} cannot be stored as a file under the folder "
                             f"(empty, '.' or '..' path segment)", bucket, key)
    return rel


def _list(client: Any, bucket: str, prefix: str) -> dict[str, Item]:
    """Every object under ``prefix`` by relative path (one listing, paged by 1000)."""
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    items: dict[str, Item] = {}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", ()):
                key = obj["Key"]
                if key.endswith("/") and int(obj.get("Size", 0)) == 0:
                    continue  # a "folder" marker written by consoles and tools
                items[_relative(prefix, key, bucket)] = Item(key, str(obj["ETag"]), int(obj["Size"]))
    except ClientError as exc:
        raise translate(exc, bucket, prefix, "list") from None
    dirs = {"/".join(rel.split("/")[:i]) for rel in items for i in range(1, rel.count("/") + 1)}
    for clash in sorted(dirs & items.keys()):
        raise S3KeyPathError(f"s3://{bucket}/{prefix}{clash} is both an object and a folder of "
                             f"objects; it cannot be stored as files", bucket, prefix + clash)
    if not items:
        raise S3ObjectNotFoundError(f"no objects under s3://{bucket}/{prefix}", bucket, prefix)
    return items


def _head(client: Any, bucket: str, key: str, version_id: str | None) -> dict[str, Item]:
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    params = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
    try:
        head = client.head_object(**params)
    except ClientError as exc:
        raise translate(exc, bucket, key) from None
    name = key.rsplit("/", 1)[-1] or "object"
    return {name: Item(key, str(head["ETag"]), int(head["ContentLength"]))}


def fetch_dir(source: str, *, client: Any = None, max_age: float | None = None,
              max_concurrency: int | None = None, max_attempts: int = MAX_ATTEMPTS) -> Path:
    """Every object under ``s3://bucket/prefix/`` as files in a local folder; returns the folder.

    Within ``max_age`` seconds of the last check no request is made; after it one listing
    tells what changed, and only changed objects are downloaded again (deleted ones are
    removed). The folder lives inside the storage budget (refused with StorageBudgetError
    before any download) and is replaced atomically: it always holds one complete version.
    """
    bucket, prefix = _parse_prefix(source)
    client = client if client is not None else get_client()
    return _fetch_entry(client, "dir", bucket, prefix, lambda: _list(client, bucket, prefix), max_age,
                        max_concurrency, max_attempts, None, f"S3 folder s3://{bucket}/{prefix}")


def fetch_file(source: str, key: str | None = None, *, client: Any = None, max_age: float | None = None,
               version_id: str | None = None, max_concurrency: int | None = None,
               max_attempts: int = MAX_ATTEMPTS) -> Path:
    """The object ``s3://bucket/key`` as a local file (named like the key's last segment).

    Within ``max_age`` no request; after it one HEAD, and a download only if the ETag changed.
    A ``version_id`` never changes and is never checked again.
    """
    bucket, key = parse(source, key)
    client = client if client is not None else get_client()
    folder = _fetch_entry(client, "file", bucket, key, lambda: _head(client, bucket, key, version_id),
                          float("inf") if version_id else max_age, max_concurrency, max_attempts,
                          version_id, f"S3 object s3://{bucket}/{key}")
    return folder / (key.rsplit("/", 1)[-1] or "object")


def _budget() -> Any:
    from .._runtime._budget import get_budget

    return get_budget()


def _fetch_entry(client: Any, kind: str, bucket: str, name: str, listing: Callable[[], dict[str, Item]],
                 max_age: float | None, max_concurrency: int | None, max_attempts: int,
                 version_id: str | None, what: str) -> Path:
    if max_age is not None and max_age < 0:
        raise ValueError(f"max_age must be >= 0 seconds, not {max_age!r}")
    budget = _budget()
    ident = json.dumps([endpoint_of(client), bucket, name, kind, version_id])
    digest = hashlib.sha256(ident.encode()).hexdigest()[:40]
    folder = budget.path("cache", NAMESPACE)
    entry = os.path.join(folder, digest)
    with _locks.hold(digest), budget.lock(f"s3-dir-{digest[:16]}"):
        old = _read_meta(entry, ident)
        if old is not None and max_age is not None and time.time() - old[1] < max_age:
            os.utime(entry)  # last use, for the budget's eviction
            return Path(entry, "files")
        items = listing()
        if old is not None and old[0] == items:
            os.utime(os.path.join(entry, "meta.json"))  # confirmed now
            os.utime(entry)
            return Path(entry, "files")
        _sweep(folder)
        staging = os.path.join(folder, f".{digest}.{os.getpid()}.{threading.get_ident()}.{next(_SEQ)}")
        try:
            os.makedirs(os.path.join(staging, "files"))
            kept = old[0] if old is not None else {}
            todo = {rel: it for rel, it in items.items()
                    if kept.get(rel) != it or not _link(entry, staging, rel)}
            need = sum(it.size + FILE_OVERHEAD for it in todo.values()) + FILE_OVERHEAD
            with budget.reserve(what, need):
                _download_all(client, bucket, staging, todo, max_concurrency, max_attempts, version_id)
            with open(os.path.join(staging, "meta.json"), "w", encoding="utf-8") as fh:
                json.dump({"ident": ident, "objects": {r: list(it) for r, it in items.items()}}, fh)
            publish_folder(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return Path(entry, "files")


def _read_meta(entry: str, ident: str) -> tuple[dict[str, Item], float] | None:
    path = os.path.join(entry, "meta.json")
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
        if meta["ident"] != ident or not os.path.isdir(os.path.join(entry, "files")):
            return None
        return {r: Item(str(k), str(e), int(s)) for r, (k, e, s) in meta["objects"].items()}, os.stat(path).st_mtime
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, evicted or damaged: fetch it whole


def _link(entry: str, staging: str, rel: str) -> bool:
    """Reuse an unchanged file of the published version (a hard link: no bytes, no copy)."""
    target = os.path.join(staging, "files", rel)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.link(os.path.join(entry, "files", rel), target)
        return True
    except OSError:  # evicted meanwhile, or a file system without links: download it again
        return False


def _download_all(client: Any, bucket: str, staging: str, todo: dict[str, Item],
                  max_concurrency: int | None, max_attempts: int, version_id: str | None) -> None:
    """Small objects (one GET each) on a pool of threads, then big ones one at a time, each
    in parallel ranges: never more connections at once than ``max_concurrency``."""
    connections = max_concurrency or _plan.default_concurrency()

    def one(rel: str, item: Item, parallel: int) -> None:
        path = os.path.join(staging, "files", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with _open_new(path) as fd:
            fetch(client, bucket, item.key, version_id=version_id, if_match=item.etag,
                  max_concurrency=parallel, max_attempts=max_attempts,
                  sink=lambda size: FileTarget(fd, READ_CHUNK))

    small = [(r, it) for r, it in todo.items() if it.size <= _plan.FIRST_GET]
    big = [(r, it) for r, it in todo.items() if it.size > _plan.FIRST_GET]
    if small:
        with ThreadPoolExecutor(max_workers=min(connections, len(small)),
                                thread_name_prefix="lambdaslim-s3dir") as pool:
            futures = [pool.submit(one, r, it, 1) for r, it in small]
            errors = [f.exception() for f in futures]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first
    for rel, item in big:
        one(rel, item, connections)


@contextlib.contextmanager
def _open_new(path: str) -> Iterator[int]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        yield fd
    finally:
        os.close(fd)


def _sweep(folder: str) -> None:
    """Remove staging folders of processes that died while downloading."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        parts = name.split(".")
        if name.startswith(".") and len(parts) > 2 and parts[2].isdigit() and not pid_alive(int(parts[2])):
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


