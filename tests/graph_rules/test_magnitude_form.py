"""magnitude-form: silero-vad's in-graph STFT magnitude sqrt(re² + im²). Quantized, the squares'
one range is set by loud input, so a quiet frame's squares round to zero (silero's silent first
steps); the rewrite has no squared tensor and is exact in float. The tiny graph is the same
front-end: a fixed DFT basis as a Conv1d, re/im sliced apart, the magnitude."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as onnx_types
from onnx import helper as h

from bot.metrics import cosine
from bot.stages.quantize import QuantSettings, quantize_with_ort
from tests.graph_rules._helpers import F, const, model, ops, probe, quantize_qdq, rewritten, run_cpu, same_numerics

N_FFT, HOP, BINS, LENGTH = 32, 16, 17, 272


def _basis() -> np.ndarray:
    n, k = np.arange(N_FFT), np.arange(BINS)[:, None]
    return np.concatenate([np.cos(2 * np.pi * k * n / N_FFT), -np.sin(2 * np.pi * k * n / N_FFT)]
                          ).astype(np.float32)[:, None, :]


def _stft_magnitude(square="pow", swap=False, exponent=2.0):
    def sq(src, dst):
        if square == "pow":
            return h.make_node("Pow", [src, "two"], [dst])
        return h.make_node("Mul", [src, src], [dst])
    add_in = ["im2", "re2"] if swap else ["re2", "im2"]
    nodes = [h.make_node("Conv", ["x", "basis"], ["spec"], strides=[HOP]),
             h.make_node("Slice", ["spec", "s0", "s1", "ax"], ["re"]),
             h.make_node("Slice", ["spec", "s1", "s2", "ax"], ["im"]),
             sq("re", "re2"), sq("im", "im2"), h.make_node("Add", add_in, ["p"]), h.make_node("Sqrt", ["p"], ["y"])]
    inits = [const("basis", _basis()), const("s0", np.array([0], np.int64)), const("s1", np.array([BINS], np.int64)),
             const("s2", np.array([2 * BINS], np.int64)), const("ax", np.array([1], np.int64))]
    inits += [const("two", np.array(exponent, np.float32))] if square == "pow" else []
    return model(nodes, [("x", F, [1, 1, LENGTH])], [("y", F)], inits)


def _audio(seed: int, loud: bool) -> dict:
    """A full-scale tone with a little noise (speech's role) or near-silence (a clip's quiet start)."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH)
    x = (0.9 * np.sin(2 * np.pi * rng.uniform(2, 7) * t / N_FFT) + 0.01 * rng.standard_normal(LENGTH)) if loud \
        else 3e-3 * rng.standard_normal(LENGTH)
    return {"x": x.astype(np.float32)[None, None]}


@pytest.mark.parametrize("square,swap", [("pow", False), ("mul", False), ("pow", True), ("mul", True)])
def test_the_magnitude_is_rewritten_without_squares_and_the_same_numbers(square, swap):
    m = _stft_magnitude(square, swap)
    out, n = rewritten(m, "magnitude-form")
    assert n == 1 and "Pow" not in ops(out) and ops(out).count("Mul") == 2  # r·r and hi·factor
    for f in (_audio(0, True), _audio(1, False), {"x": np.zeros((1, 1, LENGTH), np.float32)}):
        assert same_numerics(m, out, f, atol=1e-5)
    assert np.all(run_cpu(out, {"x": np.zeros((1, 1, LENGTH), np.float32)})[0] == 0.0)  # silence: 0, not NaN


def _cqt_log_power(keepdims=0):
    """basic-pitch's form: (re, im) stacked on an axis of 2, Mul(x, x), ReduceSum over it, Sqrt, then
    the power again and 10·log10(power + 1e-10) (here the natural log: the same Log node)."""
    nodes = [h.make_node("Conv", ["x", "basis"], ["spec"], strides=[HOP]),
             h.make_node("Reshape", ["spec", "pair"], ["ri"]), h.make_node("Mul", ["ri", "ri"], ["ri2"]),
             h.make_node("ReduceSum", ["ri2", "ax"], ["s"], keepdims=keepdims), h.make_node("Sqrt", ["s"], ["m"]),
             h.make_node("Mul", ["m", "m"], ["power"]), h.make_node("Add", ["power", "floor"], ["pf"]),
             h.make_node("Log", ["pf"], ["y"])]
    inits = [const("basis", _basis()), const("pair", np.array([1, 2, BINS, -1], np.int64)),
             const("ax", np.array([1], np.int64)), const("floor", np.array(1e-10, np.float32))]
    return model(nodes, [("x", F, [1, 1, LENGTH])], [("y", F)], inits)


@pytest.mark.parametrize("keepdims", [0, 1])
def test_a_summed_pair_and_a_log_power_are_rewritten_with_the_same_numbers(keepdims):
    m = _cqt_log_power(keepdims)
    out, n = rewritten(m, "magnitude-form")
    assert n == 2 and "ReduceSum" not in ops(out) and "Log" in ops(out)
    for f in (_audio(0, True), _audio(1, False), {"x": np.zeros((1, 1, LENGTH), np.float32)}):
        assert same_numerics(m, out, f, atol=1e-4)  # silence: log(1e-10) both ways


def test_other_powers_are_left_alone():
    assert rewritten(_stft_magnitude(exponent=3.0), "magnitude-form")[1] == 0


def _quantized(g, calib, tmp_path):
    """The quantize stage's own QDQ (w8a16), to run on ONNX Runtime's CPU."""
    import onnx

    src, out = tmp_path / f"m{len(list(tmp_path.glob('m*.onnx')))}.onnx", tmp_path / "q.onnx"
    onnx.save(g, str(src))
    quantize_with_ort(src, out, tmp_path, calib, QuantSettings(precision="w8a16"))
    return onnx.load(str(out))


def _quiet_worst_cosine(g, calib, val, tmp_path) -> float:
    q = _quantized(g, calib, tmp_path)
    return min(cosine(run_cpu(g, f)[0], run_cpu(q, f)[0]) for f in val)


def test_a_log_power_keeps_quiet_frames_at_16_bits_once_rewritten(tmp_path):
    m = _cqt_log_power()
    out, _ = rewritten(m, "magnitude-form")
    calib = [_audio(s, loud=s % 2 == 0) for s in range(8)]
    val = [_audio(100 + s, loud=False) for s in range(3)]
    def worst_error(g):  # in nepers (×4.34 dB): a log's cosine is dominated by its floor
        q = _quantized(g, calib, tmp_path)
        return max(float(np.abs(run_cpu(g, f)[0] - run_cpu(q, f)[0]).max()) for f in val)
    before, after = worst_error(m), worst_error(out)
    print(f"w8a16 CPU QDQ, log power of quiet frames: max |error| before {before:.3f} after {after:.3f} (ln units)")
    assert before > 5.0 and after < 0.5, (before, after)  # measured: 9.98 → 0.38 (43 dB → 1.6 dB)


def test_quiet_frames_survive_16_bit_quantization_once_rewritten(tmp_path):
    m = _stft_magnitude()
    out, _ = rewritten(m, "magnitude-form")
    calib = [_audio(s, loud=s % 2 == 0) for s in range(8)]
    val = [_audio(100 + s, loud=False) for s in range(3)]
    before, after = _quiet_worst_cosine(m, calib, val, tmp_path), _quiet_worst_cosine(out, calib, val, tmp_path)
    print(f"w8a16 CPU QDQ, quiet frames: worst cosine before {before:.4f} after {after:.4f}")
    assert before < 0.5 and after > 0.99, (before, after)


@pytest.mark.htp
def test_the_rewritten_magnitude_places_fully_and_keeps_quiet_frames_on_the_htp(tmp_path):
    from bot.backends.ort_qnn import OrtQnnBackend
    from bot.spec.schema import TargetSpec

    m = _stft_magnitude()
    out, _ = rewritten(m, "magnitude-form")
    calib = [_audio(s, loud=s % 2 == 0) for s in range(8)]
    val = [_audio(100 + s, loud=False) for s in range(2)]
    cos = {}
    for label, g in (("before", m), ("after", out)):
        q = quantize_qdq(g, calib, tmp_path, 16)
        assert probe(q, tmp_path).full
        got = OrtQnnBackend().run_graph(q, val, TargetSpec())
        cos[label] = min(cosine(run_cpu(g, f)[0], o["y"]) for f, o in zip(val, got))
    print(f"w8a16 HTP, quiet frames: worst cosine before {cos['before']:.4f} after {cos['after']:.4f}")
    assert cos["before"] < 0.5 and cos["after"] > 0.99, cos


def _magnitude_of_pair(dtype):
    """Only the magnitude √(re² + im²) of two inputs, in `dtype` (fp16: the graph a precision change
    to fp16 computes)."""
    t = {np.float16: onnx_types.FLOAT16, np.float32: F}[dtype]
    nodes = [h.make_node("Pow", ["re", "two"], ["re2"]), h.make_node("Pow", ["im", "two"], ["im2"]),
             h.make_node("Add", ["re2", "im2"], ["p"]), h.make_node("Sqrt", ["p"], ["y"])]
    return model(nodes, [("re", t, [1, BINS, 16]), ("im", t, [1, BINS, 16])], [("y", t)],
                 [const("two", np.array(2.0, dtype))])


def _pair(dtype, silent_frame: int = 3) -> dict:
    """A loud pair with one digitally silent frame (every bin exactly 0)."""
    rng = np.random.default_rng(0)
    re, im = (rng.standard_normal((1, BINS, 16)).astype(dtype) for _ in range(2))
    re[..., silent_frame] = 0
    im[..., silent_frame] = 0
    return {"re": re, "im": im}


def test_a_silent_frame_stays_zero_in_fp16_and_loud_ones_exact():
    """The ratio lo/hi must not divide 0 by 0 at silence: an ε added to hi (1e-12) is 0 in fp16."""
    m = _magnitude_of_pair(np.float16)
    out, n = rewritten(m, "magnitude-form")
    assert n == 1
    feeds = _pair(np.float16)
    got, want = run_cpu(out, feeds)[0], run_cpu(m, feeds)[0]
    assert np.all(np.isfinite(got)), "NaN at the silent frame"
    assert np.all(got[..., 3] == 0)
    assert np.allclose(got.astype(np.float32), want.astype(np.float32), rtol=2e-3, atol=1e-3)


def test_above_the_fp16_floor_the_rewrite_is_exact_in_float32():
    m = _magnitude_of_pair(np.float32)
    out, _ = rewritten(m, "magnitude-form")
    feeds = {k: v * np.float32(1e-6) for k, v in _pair(np.float32).items()}  # very quiet, most bins above 2⁻²⁴
    got, want = run_cpu(out, feeds)[0], run_cpu(m, feeds)[0]
    loud = np.maximum(np.abs(feeds["re"]), np.abs(feeds["im"])) >= 2.0 ** -24
    assert 0.9 < loud.mean() < 1 and np.allclose(got[loud], want[loud], rtol=1e-6, atol=0)
    assert np.all(np.abs(got - want) <= 2.5e-8) and np.all(got[..., 3] == 0)  # below the floor: bounded


@pytest.mark.htp
def test_a_silent_frame_stays_zero_on_the_htp_at_fp16(tmp_path):
    """The float graph on the HTP runs at fp16 (the fp16-precision repair's deployment)."""
    from bot.backends.ort_qnn import OrtQnnBackend
    from bot.spec.schema import TargetSpec

    m = _magnitude_of_pair(np.float32)
    out, _ = rewritten(m, "magnitude-form")
    assert probe(out, tmp_path).full
    feeds = _pair(np.float32)
    got = OrtQnnBackend().run_graph(out, [feeds], TargetSpec())[0]["y"]
    want = run_cpu(m, feeds)[0]
    print(f"HTP fp16, silent frame: {got[..., 3].ravel()[:4]}; loud frames' worst cosine "
          f"{min(cosine(want[..., j], got[..., j]) for j in range(16) if j != 3):.5f}")
    assert np.all(np.isfinite(got)) and np.all(got[..., 3] == 0)
    assert min(cosine(want[..., j], got[..., j]) for j in range(16) if j != 3) > 0.999
