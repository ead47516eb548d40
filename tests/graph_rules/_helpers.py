"""Tiny-graph helpers for the graph-rule tests: build, run on ONNX Runtime CPU, probe on the QNN HTP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

F, I64, I32 = T.FLOAT, T.INT64, T.INT32


def const(name: str, a) -> onnx.TensorProto:
    return nh.from_array(np.asarray(a), name)


def model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    """inputs: (name, elem_type, shape); outputs: (name, elem_type). Unnamed nodes get names (the probe keys on them)."""
    for i, n in enumerate(nodes):
        n.name = n.name or f"{n.op_type.lower()}_{i}"
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                     [h.make_tensor_value_info(n, t, None) for n, t in outputs], list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10 if opset >= 21 else 9
    m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    onnx.checker.check_model(m, full_check=True)
    return m


def run_cpu(m: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def same_numerics(before: onnx.ModelProto, after: onnx.ModelProto, feeds: dict, atol=1e-5) -> bool:
    onnx.checker.check_model(after, full_check=True)
    a, b = run_cpu(before, feeds), run_cpu(after, feeds)
    return len(a) == len(b) and all(x.shape == y.shape and np.allclose(x, y, atol=atol) for x, y in zip(a, b))


def probe(m: onnx.ModelProto, tmp: Path):
    from bot.backends.ort_qnn import OrtQnnBackend
    from bot.spec.schema import TargetSpec

    p = tmp / f"m{len(list(tmp.glob('m*.onnx')))}.onnx"
    onnx.save(m, str(p))
    return OrtQnnBackend().probe(p, TargetSpec())


def ops(m: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in m.graph.node]


def quantize_qdq(m: onnx.ModelProto, feeds: list[dict], tmp: Path) -> onnx.ModelProto:
    """The naive path's quantization: onnxruntime's QNN QDQ config, 8-bit, MinMax."""
    from onnxruntime.quantization import CalibrationDataReader, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    src, dst = tmp / f"f{id(m)}.onnx", tmp / f"q{id(m)}.onnx"
    onnx.save(m, str(src))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    quantize(str(src), str(dst), get_qnn_qdq_config(str(src), Reader()))
    return onnx.load(str(dst))
