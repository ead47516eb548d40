"""scatternd-to-slice-concat: ScatterND writing one contiguous box becomes Slice + Concat (this EP places ScatterND; the rewrite and numerics are tested)."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest

from ._helpers import F, const, h, model, ops, rand, rewritten, same_numerics

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def test_scatternd_slice_assignment_from_torch():
    import torch

    class Assign(torch.nn.Module):
        def forward(self, x, u):
            x = x.clone()
            x[:, 2:5] = u
            return x * 2

    buf = io.BytesIO()
    torch.onnx.export(Assign(), (torch.rand(1, 8, 4), torch.rand(1, 3, 4)), buf, opset_version=17, dynamo=False,
                      input_names=["x", "u"])
    import onnxslim

    m = onnxslim.slim(onnx.load_from_string(buf.getvalue()))
    assert "ScatterND" in ops(m)
    out, n = rewritten(m, "scatternd-to-slice-concat")
    assert n == 1 and "ScatterND" not in ops(out) and "Concat" in ops(out)
    assert same_numerics(m, out, {"x": rand(1, 8, 4), "u": rand(1, 3, 4)}, atol=0)


def test_scatternd_non_box_left_alone():
    m = model([h.make_node("ScatterND", ["x", "ix", "u"], ["y"])], [("x", F, [1, 8, 4]), ("u", F, [1, 2, 4])],
              [("y", F)], [const("ix", np.array([[[0, 3], [0, 2]]], np.int64))])  # reversed order
    assert rewritten(m, "scatternd-to-slice-concat")[1] == 0
