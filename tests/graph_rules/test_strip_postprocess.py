"""strip-postprocess: NMS and trailing decoding cut out to the host part; the rest is placed."""

from __future__ import annotations

import numpy as np
import pytest

from bot.graph.host_part import KEY, host_postprocess, run_host_postprocess

from ._helpers import F, assert_rejected_then_full, detector, h, model, ops, rand, rewritten, run_cpu

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.mark.htp
def test_nms_cut_to_host_and_rest_placed(tmp_path):
    m = detector()
    out, n = rewritten(m, "strip-postprocess")
    assert n == 1 and "NonMaxSuppression" not in ops(out) and "Gather" not in ops(out)
    assert [o.name for o in out.graph.output] == ["prob", "boxes", "scores"]
    desc = host_postprocess(out)
    assert KEY in {p.key for p in out.metadata_props}
    part = desc["parts"][0]
    assert part["ops"] == ["NonMaxSuppression", "Gather"] and [i["name"] for i in part["inputs"]] == ["boxes", "scores"]
    assert desc["final_outputs"] == ["keep", "prob"]
    feeds = {"x": rand(1, 3, 4, 4)}
    ref = run_cpu(m, feeds)
    deployed = dict(zip([o.name for o in out.graph.output], run_cpu(out, feeds)))
    assert np.array_equal(run_host_postprocess(desc, deployed)["keep"], ref[0])
    assert np.allclose(deployed["prob"], ref[1])
    p0, _ = assert_rejected_then_full(m, out, tmp_path, "NonMaxSuppression")


def test_big_region_after_argmax_kept():
    nodes = [h.make_node("ArgMax", ["x"], ["a"], axis=1, keepdims=1), h.make_node("Cast", ["a"], ["c0"], to=F)]
    for i in range(30):
        nodes.append(h.make_node("Relu", [f"c{i}"], [f"c{i + 1}"]))
    m = model(nodes, [("x", F, [1, 8, 4])], [("c30", F)])
    assert rewritten(m, "strip-postprocess")[1] == 0
