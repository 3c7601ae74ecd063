"""Lambda's invocation context and environment variables, for running handlers locally.

:class:`LambdaContext` has the attributes of the context object the Python runtime
(``awslambdaric``) passes to a handler, with a working ``get_remaining_time_in_millis()``
counting down to a real deadline. :func:`lambda_environment` returns the variables Lambda
sets in a function's environment.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any


class CognitoIdentity:
    """``context.identity``: the Amazon Cognito identity of a mobile-SDK caller, if any."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, cognito_identity_id: str | None = None, cognito_identity_pool_id: str | None = None) -> None:
        self.cognito_identity_id = cognito_identity_id
        self.cognito_identity_pool_id = cognito_identity_pool_id


class LambdaContext:
    """The context object of one invocation, as the Lambda Python runtime builds it."""

    def __init__(
        self,
        *,
        function_name: str = "test_function",
        function_version: str = "$LATEST",
        memory_limit_in_mb: int = 512,
        timeout: float = 3.0,
        aws_request_id: str | None = None,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        client_context: Any = None,
        identity: CognitoIdentity | None = None,
        tenant_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        # The runtime passes the environment variable through: a string, not an int.
        self.memory_limit_in_mb = str(memory_limit_in_mb)
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.client_context = client_context
        self.identity = identity if identity is not None else CognitoIdentity()
        self.tenant_id = tenant_id
        self.timeout = timeout
        self._epoch_deadline_time_in_ms = int(time.time() * 1000 + timeout * 1000)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation's deadline (never negative)."""
        return max(0, self._epoch_deadline_time_in_ms - int(time.time() * 1000))

    def log(self, msg: str) -> None:
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext(aws_request_id={self.aws_request_id!r}, "
            f"function_name={self.function_name!r}, memory_limit_in_mb={self.memory_limit_in_mb!r}, "
            f"remaining_ms={self.get_remaining_time_in_millis()})"
        )


def lambda_environment(
    *,
    function_name: str = "test_function",
    handler: str = "app.handler",
    memory_mb: int = 512,
    region: str = "us-east-1",
    runtime: str = "python3.12",
    task_root: str = "/var/task",
    initialization_type: str = "on-demand",
) -> dict[str, str]:
    """The environment variables Lambda sets for a function.

    Left out: credentials (``AWS_ACCESS_KEY_ID``...: tests bring their own), the runtime API
    address (only a runtime loop has one) and ``PATH``/``LD_LIBRARY_PATH``/``PYTHONPATH``,
    which name Lambda's file system (/var/lang, /var/runtime) and would break a local process.
    """
    return {
        "_HANDLER": handler,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex,
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
    }
