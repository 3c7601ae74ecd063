"""Parse ``s3://bucket/key`` (or a bucket name plus a key) into a bucket and a key."""

from __future__ import annotations

import re

from ._errors import S3URLError

# Bucket names as S3 accepts them (legacy names may hold upper case and underscores).
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")


def parse(source: str, key: str | None = None) -> tuple[str, str]:
    """Return ``(bucket, key)``; raise :class:`S3URLError` for anything else.

    ``source`` is ``"s3://bucket/key"`` (then ``key`` must be None) or a bucket name
    (then ``key`` is required). Keys are taken literally: no percent-decoding.
    """
    if not isinstance(source, str):
        raise S3URLError(f"S3 source must be a string, not {type(source).__name__}")
    if source.startswith("s3://"):
        bucket, sep, url_key = source[5:].partition("/")
        if key is not None:
            raise S3URLError(f"give the key either in the URL or as key=, not both: {source!r}", bucket, key)
        if not sep or not url_key:
            raise S3URLError(f"S3 URL has no key: {source!r} (expected s3://bucket/key)", bucket or None)
        key = url_key
    elif "://" in source:
        raise S3URLError(f"not an S3 URL: {source!r} (expected s3://bucket/key)")
    else:
        bucket = source
        if key is None or key == "":
            raise S3URLError(f"no key given for bucket {source!r}: pass key= or an s3:// URL", bucket or None)
    if not _BUCKET.match(bucket):
        raise S3URLError(f"not a valid bucket name: {bucket!r}", bucket or None, key)
    if not isinstance(key, str) or not key:
        raise S3URLError(f"the key must be a non-empty string, not {key!r}", bucket)
    return bucket, key
