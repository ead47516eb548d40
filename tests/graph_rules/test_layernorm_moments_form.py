"""layernorm-moments-form: a tf2onnx-style moments layer norm (magika's) folds to one LayerNormalization and quantizes far better."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from ._helpers import F, const, h, model, ops, probe, quantize_qdq, rand, rewritten, run_cpu, same_numerics

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def cosine(a, b):
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _moments(shape, axis, *, form="tf2onnx", opset=15):
    """A layer norm from moments. tf2onnx (magika, jax2tf): ReduceSum keepdims=0 · 1/N, x·x,
    E[x²] − E[x]², Max(0, ·), Reshape back, + ε, Sqrt, Reciprocal, · γ, (x − mean)·that, + β.
    'plain': ReduceMean keepdims=1, Pow 2, Div by σ, · γ, + β."""
    rank, n = len(shape), shape[axis]
    kept = [1 if i == axis % rank else d for i, d in enumerate(shape)]
    gshape = kept[:]
    gshape[axis % rank] = n
    gshape = [d if i == axis % rank else 1 for i, d in enumerate(gshape)]
    inits = [const("g", rand(*gshape, scale=0.3, loc=1.0)), const("b", rand(*gshape, scale=0.3)),
             const("eps", np.array(1e-6, np.float32))]
    if form == "tf2onnx":
        inits += [const("ax", np.array([axis], np.int64)), const("inv_n", np.array(1.0 / n, np.float32)),
                  const("zero", np.array(0.0, np.float32)), const("kept", np.array(kept, np.int64))]
        nodes = [h.make_node("ReduceSum", ["x", "ax"], ["s1"], keepdims=0, noop_with_empty_axes=1),
                 h.make_node("Mul", ["x", "x"], ["sq"]),
                 h.make_node("ReduceSum", ["sq", "ax"], ["s2"], keepdims=0, noop_with_empty_axes=1),
                 h.make_node("Mul", ["s2", "inv_n"], ["msq"]), h.make_node("Mul", ["s1", "inv_n"], ["m"]),
                 h.make_node("Mul", ["m", "m"], ["m2"]), h.make_node("Reshape", ["m", "kept"], ["mb"]),
                 h.make_node("Sub", ["msq", "m2"], ["v0"]), h.make_node("Sub", ["x", "mb"], ["d"]),
                 h.make_node("Max", ["zero", "v0"], ["v1"]), h.make_node("Reshape", ["v1", "kept"], ["v"]),
                 h.make_node("Add", ["v", "eps"], ["ve"]), h.make_node("Sqrt", ["ve"], ["s"]),
                 h.make_node("Reciprocal", ["s"], ["r"]), h.make_node("Mul", ["r", "g"], ["rg"]),
                 h.make_node("Mul", ["d", "rg"], ["n"]), h.make_node("Add", ["n", "b"], ["y"])]
    else:
        inits += [const("two", np.array(2.0, np.float32))]
        nodes = [h.make_node("ReduceMean", ["x"], ["m"], axes=[axis], keepdims=1),
                 h.make_node("Pow", ["x", "two"], ["sq"]),
                 h.make_node("ReduceMean", ["sq"], ["msq"], axes=[axis], keepdims=1),
                 h.make_node("Pow", ["m", "two"], ["m2"]), h.make_node("Sub", ["msq", "m2"], ["v"]),
                 h.make_node("Sub", ["x", "m"], ["d"]), h.make_node("Add", ["eps", "v"], ["ve"]),
                 h.make_node("Sqrt", ["ve"], ["s"]), h.make_node("Div", ["d", "s"], ["n"]),
                 h.make_node("Mul", ["g", "n"], ["ng"]), h.make_node("Add", ["ng", "b"], ["y"])]
    return model(nodes, [("x", F, list(shape))], [("y", F)], inits, opset=opset)


@pytest.mark.parametrize("shape,axis,form,opset", [((2, 64), -1, "tf2onnx", 15), ((1, 16, 8), 1, "tf2onnx", 15),
                                                   ((1, 8, 16), -1, "plain", 17), ((1, 8, 16), 1, "plain", 17)])
def test_moments_layernorm_folds_to_layernormalization(shape, axis, form, opset):
    m = _moments(shape, axis, form=form, opset=opset)
    out, n = rewritten(m, "layernorm-moments-form")
    assert n == 1 and "Sqrt" not in ops(out) and ops(out).count("LayerNormalization") == 1
    last = axis % len(shape) == len(shape) - 1
    assert ops(out) == (["LayerNormalization"] if last else ["Transpose", "LayerNormalization", "Transpose"])
    assert same_numerics(m, out, {"x": rand(*shape, scale=7, loc=20)}, atol=1e-4)


def test_moments_with_gamma_varying_off_the_axis_left_alone():
    m = _moments((2, 64), -1)
    g = next(i for i in m.graph.initializer if i.name == "g")
    g.CopyFrom(const("g", rand(2, 1)))  # γ per row: not a layer norm's
    assert rewritten(m, "layernorm-moments-form")[1] == 0


def test_moments_with_wrong_count_left_alone():
    m = _moments((2, 64), -1)
    c = next(i for i in m.graph.initializer if i.name == "inv_n")
    c.CopyFrom(const("inv_n", np.array(1.0 / 32, np.float32)))  # a scaled mean is not E[x]
    assert rewritten(m, "layernorm-moments-form")[1] == 0


WIDTH = 512


def _features(k, seed):
    """Activations at the scale of magika's first layer norm's input (measured on real files:
    mean ≈ 0.12, std ≈ 0.057 along the normalised axis of 512)."""
    rng = np.random.default_rng(seed)
    return [{"x": np.abs(0.12 * rng.uniform(0.7, 1.3) + 0.057 * rng.standard_normal((1, WIDTH))).astype(np.float32)}
            for _ in range(k)]


@pytest.mark.htp
@pytest.mark.parametrize("bits", [8, 16])
def test_moments_layernorm_quantizes_better_folded_on_the_htp(tmp_path, bits):
    """Quantized, E[x²] − E[x]² of small activations is all rounding: the moments form comes back
    at cosine ≈ 0.46 on the HTP at w8a8 and at w8a16 alike; one LayerNormalization at ≥ 0.999."""
    from bot.backends.ort_qnn import OrtQnnBackend
    from bot.spec.schema import TargetSpec

    m = _moments((1, WIDTH), -1)
    out, n = rewritten(m, "layernorm-moments-form")
    assert n == 1
    calib, val = _features(16, 1), _features(8, 2)
    ref = np.concatenate([run_cpu(m, f)[0] for f in val])
    cos = {}
    for label, g in (("before", m), ("after", out)):
        q = quantize_qdq(g, calib, tmp_path, bits)
        assert probe(q, tmp_path).full
        got = OrtQnnBackend().run_graph(q, val, TargetSpec())
        cos[label] = cosine(ref, np.concatenate([o["y"] for o in got]))
    print(f"w8a{bits}: HTP cosine before {cos['before']:.4f} after {cos['after']:.4f}")
    assert cos["before"] < 0.9 and cos["after"] >= 0.999, cos
