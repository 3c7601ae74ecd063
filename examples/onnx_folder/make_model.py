"""Build a tiny ONNX model whose weights live in a separate file, and upload the folder.

    python make_model.py s3://my-bucket/models/tiny/

The model computes ``y = x @ W + b``. ``W`` is saved as external data (``weights.bin``
beside ``model.onnx``), as big models are: onnxruntime then needs both files in one folder,
which is what ``lambdaslim.s3.fetch_dir`` gives a handler. No weights are downloaded from
anywhere; they are random numbers made here.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any


def build_model(folder: Path, n_in: int = 64, n_out: int = 8, seed: int = 0) -> tuple[Any, Any]:
    """Write ``model.onnx`` and ``weights.bin`` into ``folder``; return ``(W, b)``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((n_in, n_out)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n_out])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by older onnxruntime releases too
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    return weights, bias


def upload(folder: Path, url: str, client: Any = None) -> None:
    """Put every file of ``folder`` under the ``s3://bucket/prefix/`` URL."""
    from lambdaslim import s3

    base = url.rstrip("/")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.stream_put(f"{base}/{path.relative_to(folder).as_posix()}", path.read_bytes(), client=client)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        build_model(Path(tmp))
        upload(Path(tmp), sys.argv[1])
