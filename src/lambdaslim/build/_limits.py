"""AWS Lambda's size limits, in one place, in bytes.

AWS documents the layer and deployment limits in MB; the console enforces 250 MB unzipped as
262,144,000 bytes (250 MiB) and 50 MB zipped as 52,428,800 bytes (50 MiB). /tmp defaults to
512 MB and EphemeralStorage goes up to 10,240 MB.
"""

from __future__ import annotations

from .._size import format_size

UNZIPPED_LAYERS = 250 * 1024 * 1024  # all layers + function code, unzipped
DIRECT_UPLOAD_ZIP = 50 * 1024 * 1024  # a zip uploaded directly (larger: through S3)
DEFAULT_TMP = 512 * 1024 * 1024
MAX_TMP = 10240 * 1024 * 1024
RESPONSE = 6 * 1024 * 1024  # synchronous invocation response payload

_MIB = 1024 * 1024


def show(limit: int) -> str:
    """A limit as AWS states it: its "250 MB" is 250 MiB."""
    return f"{limit // _MIB} MB" if limit % _MIB == 0 else format_size(limit)


def against(value: int, limit: int) -> str:
    """``value`` in the unit :func:`show` gives ``limit`` (AWS's MB of MiB), so that
    "536.9 MB / 512 MB" never stands for a value that fits."""
    return f"{value / _MIB:.1f} MB" if limit % _MIB == 0 and value >= 1000 else format_size(value)
