"""The host-part format: cuts compose, the later cut (nearer the device) running first on the host."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from bot.graph.host_part import cut_to_host, host_postprocess, run_host_postprocess
from bot.graph.irutil import to_ir
from bot.graph.rules import apply_rewrites

from ._helpers import cpu, packed


def test_host_parts_compose_latest_cut_first():
    m = packed()
    first, _ = apply_rewrites(m, ["split-packed-output"])
    # a second cut nearer the device (the box scaling) runs before the first one on the host
    mi = to_ir(first)
    mul = next(n for n in mi.graph if n.name == "mul")
    second = cut_to_host(first, mi, {id(mul)})
    assert isinstance(mi, ir.Model) and [n.name for n in second.graph.node] == ["logits"]
    desc = host_postprocess(second)
    assert [p["ops"] for p in desc["parts"]] == [["Mul"], ["Sigmoid", "Concat"]]
    feeds = {"x": np.ones((1, 4, 5), np.float32), "z0": np.zeros((1, 3, 5), np.float32)}
    got = run_host_postprocess(desc, {"x": feeds["x"], "z": feeds["z0"]})["out"]
    assert np.allclose(got, cpu(m, feeds)["out"])
