"""``stream_get``: read an S3 object into memory, through the warm-start cache."""

from __future__ import annotations

import time
from typing import Any

from . import _url
from ._cache import CacheKey, Entry, disk_cache, memory_cache
from ._client import endpoint_of, get_client
from ._fetch import MAX_ATTEMPTS, Fetched, fetch, normalize_range
from ._object import S3Object

_CACHES = ("memory", "tmp")


def stream_get(
    source: str,
    key: str | None = None,
    *,
    client: Any = None,
    cache: str | None = "memory",
    max_age: float | None = None,
    version_id: str | None = None,
    byte_range: tuple[int, int | None] | None = None,
    part_size: int | None = None,
    max_concurrency: int | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> S3Object:
    """Read ``s3://bucket/key`` (or ``source=bucket, key=key``) into memory.

    Returns a read-only, seekable binary file (:class:`S3Object`) whose ``read()`` hands out
    the downloaded ``bytes`` themselves (no copy). Objects up to 8 MiB come in one GET; larger
    ones in parallel ranged GETs pinned to one ETag, their parts written straight into place;
    an overwrite during the read raises :class:`ObjectChangedError`. ``part_size`` and
    ``max_concurrency`` default to a choice from the object's size and the CPUs available.

    ``cache``: ``"memory"`` (default) keeps the bytes in this process across invocations,
    ``"tmp"`` keeps them under the extraction root inside the storage budget, ``None``
    disables caching. A cached entry is revalidated with ``IfNoneMatch`` (a 304 costs one
    small request) unless it is younger than ``max_age`` seconds, in which case no request
    is made. An entry read with ``version_id`` never changes and is never revalidated.

    ``byte_range=(start, stop)`` reads bytes ``start`` to ``stop - 1`` (``stop=None``: to the
    end), like a slice; a range starting past the end raises :class:`S3RangeError`.
    """
    bucket, key = _url.parse(source, key)
    if cache is not None and cache not in _CACHES:
        raise ValueError(f"cache must be 'memory', 'tmp' or None, not {cache!r}")
    if max_age is not None and max_age < 0:
        raise ValueError(f"max_age must be >= 0 seconds, not {max_age!r}")
    normalize_range(byte_range)
    client = client if client is not None else get_client()
    options = {"version_id": version_id, "byte_range": byte_range, "part_size": part_size,
               "max_concurrency": max_concurrency, "max_attempts": max_attempts}
    if cache is None:
        fetched = fetch(client, bucket, key, **options)  # type: ignore[arg-type]
        assert fetched is not None
        return _object(bucket, key, fetched, "network")
    store = memory_cache if cache == "memory" else disk_cache
    ck = CacheKey(endpoint_of(client), bucket, key, version_id,
                  tuple(byte_range) if byte_range is not None else None)  # type: ignore[arg-type]
    with store.key_lock(ck):
        entry = store.get(ck)
        if entry is not None and (
            version_id is not None
            or (max_age is not None and time.time() - entry.validated_at < max_age)
        ):
            store.counters.add("hits")
            return _object(bucket, key, entry, cache)
        fetched = fetch(client, bucket, key, if_none_match=entry.etag if entry else None,
                        **options)  # type: ignore[arg-type]
        if fetched is None:
            assert entry is not None
            store.counters.add("revalidated")
            store.touch(ck, entry)
            return _object(bucket, key, entry, "revalidated")
        store.counters.add("downloads")
        new = Entry(data=fetched.data, etag=fetched.etag, object_size=fetched.object_size,
                    validated_at=time.time(), version_id=fetched.version_id,
                    content_type=fetched.content_type, last_modified=fetched.last_modified)
        store.put(ck, new)
        return _object(bucket, key, fetched, "network")


def _object(bucket: str, key: str, got: Fetched | Entry, source: str) -> S3Object:
    return S3Object(got.data, bucket=bucket, key=key, etag=got.etag, object_size=got.object_size,
                    version_id=got.version_id, content_type=got.content_type,
                    last_modified=got.last_modified, source=source)
