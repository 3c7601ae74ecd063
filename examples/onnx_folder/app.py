"""A handler that serves an ONNX model whose weights are a separate file (external data).

onnxruntime loads such a model only from a path, with its weights file in the same folder.
``lambdaslim.s3.fetch_dir`` downloads the folder once per execution environment into the
/tmp storage budget; later cold starts of the same environment, and warm invocations, reuse
it (within ``max_age`` without any request; after it, one listing, and only changed files
are downloaded again).

Environment: ``MODEL_URL=s3://my-bucket/models/tiny/`` (made by ``make_model.py``).
"""

from __future__ import annotations

import os
from typing import Any

from lambdaslim import s3

_session: Any = None


def _model() -> Any:
    global _session
    if _session is None:
        import onnxruntime

        folder = s3.fetch_dir(os.environ["MODEL_URL"], max_age=300)
        _session = onnxruntime.InferenceSession(str(folder / "model.onnx"),
                                                providers=["CPUExecutionProvider"])
    return _session


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    import numpy as np

    x = np.asarray(event["x"], dtype=np.float32)
    (y,) = _model().run(None, {"x": x})
    return {"y": y.tolist()}
