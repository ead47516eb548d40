"""Localization sample by sample, and the graph rule it proposes for an op's quantized form.

silero-vad failed validate on its quiet first steps while every layer's pooled cosine looked fine:
loud samples dominate a pooled figure. Each layer now also carries its worst single-sample cosine,
and a rule for an op's quantized form (magnitude-form) is proposed where that first breaks."""

from __future__ import annotations

import onnx

from bot.records import Failure, FailureKind
from bot.repair.catalogue import all_repairs
from bot.repair.localize import LayerError, localize, losing_on_some_sample
from bot.repair.state import RepairState
from bot.stage_options import OptimizeOptions
from bot.stages.quantize import QuantSettings, quantize_with_ort
from tests.graph_rules._helpers import rewritten
from tests.graph_rules.test_magnitude_form import _audio, _stft_magnitude


def _localized(m, tmp_path, tag):
    src, q = tmp_path / f"{tag}.onnx", tmp_path / f"{tag}-q.onnx"
    onnx.save(m, str(src))
    quantize_with_ort(src, q, tmp_path, [_audio(s, loud=s % 2 == 0) for s in range(8)], QuantSettings("w8a16"))
    return localize(src, q, [_audio(100, True), _audio(101, False), _audio(102, True)])[0]


def test_the_worst_sample_names_the_layer_a_pooled_cosine_hides(tmp_path):
    layers = _localized(_stft_magnitude(), tmp_path, "before")
    squares = [e for e in layers if e.op == "Pow"]
    assert squares and all(e.cosine >= 0.99 for e in squares)  # pooled: the loud samples dominate
    assert all(e.worst_cosine < 0.5 and e.worst_sample == 1 for e in squares)  # the quiet one
    assert all(e.worst_drop_db >= 20 for e in squares)  # lost by the square itself
    conv = next(e for e in layers if e.op == "Conv")
    assert conv.worst_cosine >= 0.99  # the Conv before it keeps the quiet sample
    assert [e.op for e in losing_on_some_sample(layers, ("Pow", "Mul", "Log"))] == ["Pow", "Pow"]
    after = _localized(rewritten(_stft_magnitude(), "magnitude-form")[0], tmp_path, "after")
    assert losing_on_some_sample(after, ("Pow", "Mul", "Log")) == []
    assert min(e.worst_cosine for e in after) >= 0.99


def _accuracy() -> Failure:
    return Failure("validate", FailureKind.ACCURACY, "new_state below threshold (worst cosine 0.59)",
                   details={"failing_outputs": ["new_state"], "metrics": {"new_state": {"cosine": 0.59}}})


def _ctx(layers):
    return {"localize": lambda: layers, "divergent": lambda: [], "output_producers": lambda: {},
            "rewrite_count": lambda rule_id: 1}


def _layer(i, op, worst, drop=0.0):
    return LayerError(f"t{i}", op, 0.999, 30.0, i, worst_cosine=worst, worst_sample=0, worst_drop_db=drop)


def test_magnitude_form_is_proposed_where_a_square_or_a_log_power_loses_one_sample():
    repair = all_repairs()["magnitude-form"]
    # silero at w8a16 (measured): the STFT Conv keeps the quiet step, its square loses 39.8 dB of it
    at_w8a16 = [_layer(0, "Pad", 1.0, 6.7), _layer(1, "Conv", 0.9999, 12.9), _layer(2, "Pow", 0.46, 39.8),
                _layer(3, "Sqrt", 0.36, 0.0)]
    new = repair.propose(_accuracy(), RepairState(), _ctx(at_w8a16))
    assert new is not None and "magnitude-form" in new.opts(OptimizeOptions).rewrites
    # basic-pitch at w8a16 (measured): the CQT Conv already below the bar on one window, harmlessly;
    # the log of the power loses 31 dB
    bp = [_layer(0, "Conv", 0.617, 40.0), _layer(1, "Mul", 0.9989, 5.7), _layer(2, "Log", 0.9377, 31.1)]
    assert repair.propose(_accuracy(), RepairState(), _ctx(bp)) is not None
    # at w8a8 the quiet input itself is already lost (8-bit x): the square is bad only through its input
    at_w8a8 = [_layer(0, "Pad", 0.88, 55.0), _layer(1, "Conv", 0.23, 5.2), _layer(2, "Pow", 0.2, -0.3)]
    assert repair.propose(_accuracy(), RepairState(), _ctx(at_w8a8)) is None
    # nothing lost on any sample: nothing to propose; and never twice
    assert repair.propose(_accuracy(), RepairState(), _ctx([_layer(0, "Pow", 0.999, 30.0)])) is None
    assert repair.propose(_accuracy(), new, _ctx(at_w8a16)) is None
