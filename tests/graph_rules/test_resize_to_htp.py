"""resize-to-htp: nearest Resize forms the HTP refuses become an accepted form or constant Gathers."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest

from ._helpers import F, assert_rejected_then_full, const, h, model, ops, quantize_qdq, rand, rewritten, same_numerics

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def _resize(ctm, nm, scales, shape=(1, 4, 8, 8)):
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             h.make_node("Resize", ["c", "", "sc"], ["y"], mode="nearest", coordinate_transformation_mode=ctm,
                         nearest_mode=nm)]
    return model(nodes, [("x", F, list(shape))], [("y", F)],
                 [const("w", rand(4, 4, 3, 3, scale=0.1)), const("sc", np.array(scales, np.float32))])


@pytest.mark.htp
def test_resize_asymmetric_round_prefer_floor_becomes_floor(tmp_path):
    m = _resize("asymmetric", "round_prefer_floor", [1, 1, 2, 2])
    out, n = rewritten(m, "resize-to-htp")
    assert n == 1 and ops(out) == ["Conv", "Resize"]
    r = next(x for x in out.graph.node if x.op_type == "Resize")
    assert {a.name: h.get_attribute_value(a) for a in r.attribute}["nearest_mode"] == b"floor"
    assert same_numerics(m, out, {"x": rand(1, 4, 8, 8)}, atol=0)
    p0, _ = assert_rejected_then_full(m, out, tmp_path, "Resize")
    assert "asymmetric" in next(r.reason for r in p0.rejected if r.op == "Resize")


@pytest.mark.htp
def test_resize_without_an_equal_form_becomes_gathers(tmp_path):
    m = _resize("asymmetric", "round_prefer_floor", [1, 1, 3, 3])  # ×3: no accepted Resize reads the same pixels
    out, n = rewritten(m, "resize-to-htp")
    assert n == 1 and ops(out) == ["Conv", "Gather", "Gather"]
    assert same_numerics(m, out, {"x": rand(1, 4, 8, 8)}, atol=0)
    assert_rejected_then_full(m, out, tmp_path, "Resize")


@pytest.mark.htp
def test_resize_qdq_form_rejected_then_placed(tmp_path):
    m = _resize("asymmetric", "round_prefer_floor", [1, 1, 2, 2])
    out, _ = rewritten(m, "resize-to-htp")
    feeds = [{"x": rand(1, 4, 8, 8)} for _ in range(4)]
    assert_rejected_then_full(quantize_qdq(m, feeds, tmp_path), quantize_qdq(out, feeds, tmp_path), tmp_path)


def test_resize_leaves_torch_upsample_alone():
    """nn.Upsample(scale_factor=2, 'nearest') exports asymmetric+floor, which the HTP accepts."""
    import torch

    class Up(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up = torch.nn.Upsample(scale_factor=2, mode="nearest")

        def forward(self, x):
            return torch.cat([self.up(x), torch.zeros(1, 2, 8, 8)], 1)

    buf = io.BytesIO()
    torch.onnx.export(Up().eval(), (torch.rand(1, 2, 4, 4),), buf, opset_version=17, dynamo=False)
    m = onnx.load_from_string(buf.getvalue())
    assert "Resize" in ops(m)
    assert rewritten(m, "resize-to-htp")[1] == 0
