"""Exception types of :mod:`lambdaslim.s3`; each names the bucket and key it is about.

botocore's ``ClientError`` is translated here so callers catch ordinary built-in families:
a missing object is a :class:`LookupError`, a refused one a :class:`PermissionError`, a
connection that kept dropping a :class:`ConnectionError`.
"""

from __future__ import annotations

from typing import Any

from .._errors import LambdaslimError


class S3Error(LambdaslimError):
    """Base class of every S3 error lambdaslim raises; ``bucket``/``key`` say which object."""

    def __init__(self, message: str, bucket: str | None = None, key: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.bucket = bucket
        self.key = key
        self.code = code  # the S3 error code (``NoSuchKey``...) when the server sent one

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class S3URLError(S3Error, ValueError):
    """``source`` is not ``s3://bucket/key`` nor a bucket name with a key."""


class S3ObjectNotFoundError(S3Error, LookupError):
    """The key (or the version asked for) does not exist."""


class S3BucketNotFoundError(S3ObjectNotFoundError):
    """The bucket does not exist."""


class S3AccessDeniedError(S3Error, PermissionError):
    """The credentials may not read or write this object (403, bad key id, bad signature)."""


class S3RangeError(S3Error, ValueError):
    """The byte range asked for lies outside the object (S3's ``InvalidRange``)."""


class S3KeyPathError(S3Error, ValueError):
    """An object's key cannot be a file path under the folder (``..``, empty segments, or a
    key that is both an object and a folder of objects)."""


class ObjectChangedError(S3Error, RuntimeError):
    """The object was overwritten while it was being read; no mix of versions is returned.

    ``etag`` is the version the read started with. Reading again gets the new version.
    """

    def __init__(self, bucket: str, key: str, etag: str) -> None:
        super().__init__(
            f"s3://{bucket}/{key} changed while it was being read (started with ETag {etag}); "
            f"read it again", bucket, key, "PreconditionFailed")
        self.etag = etag


class S3TransferError(S3Error, ConnectionError):
    """The connection kept failing: retries were exhausted; nothing partial is returned."""

    def __init__(self, message: str, bucket: str, key: str, attempts: int, done: int, total: int) -> None:
        super().__init__(message, bucket, key)
        self.attempts = attempts
        self.bytes_done = done
        self.bytes_total = total


_ACCESS_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
                 "AccountProblem", "InvalidToken", "ExpiredToken", "403", "Forbidden"}
_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchVersion", "404", "NotFound"}


def error_code(exc: BaseException) -> tuple[str, int]:
    """(S3 error code, HTTP status) of a botocore ``ClientError``; ("", 0) for anything else."""
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return "", 0
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def translate(exc: BaseException, bucket: str, key: str | None, action: str = "read") -> BaseException:
    """Our exception for a botocore ``ClientError`` (the original is chained by the caller).

    Returns ``exc`` itself when it is not an S3 error response (network errors and the like).
    """
    code, status = error_code(exc)
    if not code and not status:
        return exc
    where = f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"
    message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")) or code
    if code == "NoSuchBucket":
        return S3BucketNotFoundError(f"bucket {bucket!r} does not exist ({action} {where})", bucket, key, code)
    if code in _NOT_FOUND_CODES or (status == 404 and code not in ("NoSuchUpload",)):
        return S3ObjectNotFoundError(f"{where} does not exist", bucket, key, code)
    if code in _ACCESS_CODES or status == 403:
        return S3AccessDeniedError(f"access denied to {action} {where}: {message} ({code})", bucket, key, code)
    if code == "InvalidRange" or status == 416:
        return S3RangeError(f"the range asked for lies outside {where}", bucket, key, code)
    return S3Error(f"cannot {action} {where}: {message} ({code}, HTTP {status})", bucket, key, code)
