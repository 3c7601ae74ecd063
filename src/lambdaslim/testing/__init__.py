"""The test harness: Lambda simulated on this machine, for lambdaslim's tests and its users'.

The pytest plugin (:mod:`lambdaslim.testing.plugin`, registered as the ``pytest11`` entry point
``lambdaslim``) turns these into fixtures. Nothing here ships in a layer.
"""

from __future__ import annotations

from ._cache import cache_dir, pip_site
from ._emulator import InvokeResult, LocalRuntime, invocation_records
from ._errors import EmulatorError, S3ServerError
from ._layers import build_opt, built_layer, layer_zip_for, packed_layer
from ._localenv import LambdaContext, lambda_environment
from ._proxy import CuttingProxy
from ._rie import fetch_rie, find_rie, runtime_dir
from ._s3server import S3Server

__all__ = [
    "CuttingProxy",
    "EmulatorError",
    "InvokeResult",
    "LambdaContext",
    "LocalRuntime",
    "S3Server",
    "S3ServerError",
    "build_opt",
    "built_layer",
    "cache_dir",
    "fetch_rie",
    "find_rie",
    "invocation_records",
    "lambda_environment",
    "layer_zip_for",
    "packed_layer",
    "pip_site",
    "runtime_dir",
]
