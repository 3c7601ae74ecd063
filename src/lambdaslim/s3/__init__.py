"""Stream S3 objects to and from memory, with a warm-start cache.

>>> from lambdaslim import s3
>>> model = s3.stream_get("s3://my-bucket/models/model.onnx", max_age=300)  # doctest: +SKIP
>>> s3.stream_put("s3://my-bucket/out/result.json", b"{}")                  # doctest: +SKIP

One boto3 client is created on first use and reused (:func:`set_client` to pass your own).
boto3 is imported only when a function here is first called. See docs/s3.md.
"""

from __future__ import annotations

from ._cache import CacheInfo, cache_info, clear_cache, memory_cache
from ._client import get_client, set_client
from ._errors import (
    ObjectChangedError,
    S3AccessDeniedError,
    S3BucketNotFoundError,
    S3Error,
    S3KeyPathError,
    S3ObjectNotFoundError,
    S3RangeError,
    S3TransferError,
    S3URLError,
)
from ._dir import fetch_dir, fetch_file
from ._get import stream_get
from ._object import S3Object
from ._put import stream_put
from ._url import parse as parse_url

__all__ = [
    "CacheInfo",
    "ObjectChangedError",
    "S3AccessDeniedError",
    "S3BucketNotFoundError",
    "S3Error",
    "S3KeyPathError",
    "S3Object",
    "S3ObjectNotFoundError",
    "S3RangeError",
    "S3TransferError",
    "S3URLError",
    "cache_info",
    "clear_cache",
    "fetch_dir",
    "fetch_file",
    "get_client",
    "parse_url",
    "set_client",
    "set_memory_cache_limit",
    "stream_get",
    "stream_put",
]


def set_memory_cache_limit(nbytes: int | str) -> None:
    """Bound the memory cache to ``nbytes`` (``"256MB"`` works too); older entries go first.

    The default is ``LAMBDASLIM_S3_CACHE_MEMORY``, else a quarter of the function's memory.
    """
    from .._size import parse_size

    memory_cache.set_limit(parse_size(nbytes))
