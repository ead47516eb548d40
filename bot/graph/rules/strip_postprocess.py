"""strip-postprocess: cut NMS and other trailing post-processing out of the deployed graph.

Evidence (onnxruntime-qnn 2.7, HTP v75): `NonMaxSuppression` is refused (`Cannot get shape`: its
output count is data-dependent, and the HTP wants static shapes); QAIRT-era practice (AI Hub's
YOLO models) is the same: the network ends at boxes/scores and the app runs NMS. TopK / ArgMax /
Gather decoding are placed by this EP version but are host work in every packaged detector and
cost a CPU↔NPU round trip when they are the last ops anyway.

The rule seeds at every NonMaxSuppression (and NonZero), and at TopK / ArgMax / ArgMin whose
downstream region is small (≤ 24 nodes) and ends only in graph outputs. The region cut is the
seeds' whole downstream closure, moved to the host part (`bot.graph.host_part`: validate and the packaged
`run.py` run it on the CPU after the device).
"""

from __future__ import annotations

import onnx
import onnx_ir as ir

from bot.graph.host_part import cut_to_host
from bot.graph.irutil import to_ir
from bot.graph.rule import GraphRule

ALWAYS = {"NonMaxSuppression", "NonZero"}
TRAILING = {"TopK", "ArgMax", "ArgMin"}
MAX_TRAILING = 24


def _closure(node: ir.Node) -> list[ir.Node]:
    seen, stack = {id(node): node}, [node]
    while stack:
        for out in stack.pop().outputs:
            for user, _ in out.uses():
                if id(user) not in seen:
                    seen[id(user)] = user
                    stack.append(user)
    return list(seen.values())


def rewrite(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    m = to_ir(model)
    cut: dict[int, ir.Node] = {}
    seeds = 0
    for node in m.graph:
        if id(node) in cut:
            continue
        if node.op_type in ALWAYS or node.op_type in TRAILING:
            region = _closure(node)
            if node.op_type in TRAILING and len(region) > MAX_TRAILING:
                continue
            seeds += 1
            cut.update((id(n), n) for n in region)
    if not seeds:
        return model, 0
    return cut_to_host(model, m, set(cut)), seeds


RULE = GraphRule(
    id="strip-postprocess",
    summary="cut NMS / TopK / ArgMax decoding out of the deployed graph; the cut part runs on the host "
            "(metadata_props aipc.host_postprocess)",
    ops=("NonMaxSuppression", "NonZero", "TopK", "ArgMax", "ArgMin"),
    reasons=(),
    rewrite=rewrite,
)
