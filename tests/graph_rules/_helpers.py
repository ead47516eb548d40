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


def quantize_qdq(m: onnx.ModelProto, feeds: list[dict], tmp: Path, activation_bits: int = 8) -> onnx.ModelProto:
    """The naive path's quantization: onnxruntime's QNN QDQ config, 8-bit weights, MinMax; 8- or
    16-bit activations."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    src, dst = tmp / f"f{id(m)}.onnx", tmp / f"q{id(m)}_{activation_bits}.onnx"
    onnx.save(m, str(src))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    act = QuantType.QUInt16 if activation_bits == 16 else QuantType.QUInt8
    quantize(str(src), str(dst), get_qnn_qdq_config(str(src), Reader(), activation_type=act,
                                                     weight_type=QuantType.QUInt8))
    return onnx.load(str(dst))


RNG = np.random.default_rng(0)


def rand(*shape, scale=1.0, loc=0.0):
    return (loc + RNG.standard_normal(shape) * scale).astype(np.float32)


def rewritten(m, rid):
    """The model after one rule, and how many places it rewrote."""
    from bot.graph.rules import apply_rewrites

    out, counts = apply_rewrites(m, [rid])
    return out, counts[rid]


def assert_rejected_then_full(before, after, tmp_path, op=None):
    p0, p1 = probe(before, tmp_path), probe(after, tmp_path)
    assert not p0.full, "the original was expected to be refused by the HTP"
    if op is not None:
        assert any(r.op == op for r in p0.rejected) or p0.fallback_nodes
    assert p1.full, [(r.op, r.reason) for r in p1.rejected] + p1.fallback_nodes
    return p0, p1


def detector():
    """Conv → boxes / Sigmoid scores → NonMaxSuppression → Gather: a tiny detector with NMS at its end."""
    nodes = [h.make_node("Conv", ["x", "w"], ["f"]), h.make_node("Reshape", ["f", "s"], ["r"]),
             h.make_node("Slice", ["r", "a0", "a4", "ax"], ["boxes"]),
             h.make_node("Slice", ["r", "a4", "a6", "ax"], ["logits"]), h.make_node("Sigmoid", ["logits"], ["prob"]),
             h.make_node("Transpose", ["prob"], ["scores"], perm=[0, 2, 1]),
             h.make_node("NonMaxSuppression", ["boxes", "scores", "mo", "iou", "st"], ["sel"]),
             h.make_node("Gather", ["sel", "col"], ["keep"], axis=1)]
    inits = [const("w", rand(6, 3, 1, 1)), const("s", np.array([1, 16, 6], np.int64)),
             const("a0", np.array([0], np.int64)), const("a4", np.array([4], np.int64)),
             const("a6", np.array([6], np.int64)), const("ax", np.array([2], np.int64)),
             const("mo", np.array([5], np.int64)), const("iou", np.array([0.5], np.float32)),
             const("st", np.array([0.2], np.float32)), const("col", np.array(2, np.int64))]
    return model(nodes, [("x", F, [1, 3, 4, 4])], [("keep", I64), ("prob", F)], inits)


def packed():
    """Boxes (×320) and Sigmoid scores packed in one output by a Concat: YOLO's detect head, tiny."""
    F = onnx.TensorProto.FLOAT
    nodes = [h.make_node("Mul", ["x", "k"], ["boxes"], name="mul"),
             h.make_node("Mul", ["z0", "one"], ["z"], name="logits"),
             h.make_node("Sigmoid", ["z"], ["prob"], name="sig"),
             h.make_node("Concat", ["boxes", "prob"], ["out"], axis=1, name="cat")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", F, [1, 4, 5]), h.make_tensor_value_info("z0", F, [1, 3, 5])],
                     [h.make_tensor_value_info("out", F, [1, 7, 5])],
                     [onnx.numpy_helper.from_array(np.array(320.0, np.float32), "k"),
                      onnx.numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def cpu(model, feeds) -> dict:
    """Outputs by name on ONNX Runtime CPU."""
    import onnxruntime as ort

    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))
