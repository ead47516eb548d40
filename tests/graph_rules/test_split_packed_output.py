"""split-packed-output: an output Concat of boxes and Sigmoid scores is assembled on the host, so
each part leaves the device as its own output (with its own quantization scale)."""

from __future__ import annotations

import numpy as np

from bot.graph.host_part import host_postprocess, run_host_postprocess
from bot.graph.rules import apply_rewrites

from ._helpers import cpu, packed


def test_split_packed_output_moves_concat_and_sigmoid_to_the_host():
    m = packed()
    out, counts = apply_rewrites(m, ["split-packed-output"])
    assert counts == {"split-packed-output": 1}
    assert [n.op_type for n in out.graph.node] == ["Mul", "Mul"]
    assert sorted(o.name for o in out.graph.output) == ["boxes", "z"]  # each part leaves with its own scale
    desc = host_postprocess(out)
    assert desc["final_outputs"] == ["out"] and desc["parts"][0]["ops"] == ["Sigmoid", "Concat"]
    rng = np.random.default_rng(0)
    feeds = {"x": rng.random((1, 4, 5), np.float32), "z0": rng.normal(-11, 1, (1, 3, 5)).astype(np.float32)}
    restored = run_host_postprocess(desc, cpu(out, feeds))
    assert np.array_equal(restored["out"], cpu(m, feeds)["out"])
    again, n = apply_rewrites(out, ["split-packed-output"])
    assert n == {"split-packed-output": 0}
