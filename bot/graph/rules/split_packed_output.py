"""split-packed-output: a graph output that packs quantities of different scale is assembled on the host.

Evidence (zoo, YOLOv8n/11n/26n at w8a8 on the simulated HTP v75): the detect head ends in
`Concat(boxes, Sigmoid(class_logits))`: boxes in pixels (0–320) and class scores in (0, 1) share
one tensor and so one quantization scale, and the Sigmoid's output gets the recipe's fixed
[0, 1] encoding. With random weights the scores are ~1e-5 and come back as 0 or 0.5 (scores part
cosine 0.51, SQNR −80 dB), whatever the activation bits; trained detectors lose their low
confidences the same way. The fix practitioners ship (AI Hub's YOLO exports) is to end the
network at separate tensors and let the app concatenate: here the Concat, and the bounded
activations (Sigmoid / Softmax / Tanh) that feed only it (through reshapes, if any), move to the
host part, so boxes and class logits leave the device as separate outputs with their own scales.

Proposed for an accuracy failure on an output produced by a Concat; the rest of the graph is
unchanged, and the host part restores the original output, so golden outputs still compare.
"""

from __future__ import annotations

import onnx

from bot.graph.host_part import cut_to_host
from bot.graph.irutil import to_ir
from bot.graph.rule import GraphRule

BOUNDED = {"Sigmoid", "Softmax", "Tanh"}
RESHAPES = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"}


def _activation_chain(v) -> list[int]:
    """The bounded activation behind a Concat input, with the reshapes between them (each used
    only on this path), or nothing."""
    chain = []
    while v is not None and len(v.uses()) == 1 and not v.is_graph_output():
        p = v.producer()
        if p is None:
            return []
        chain.append(id(p))
        if p.op_type in BOUNDED:
            return chain
        if p.op_type not in RESHAPES:
            return []
        v = p.inputs[0]
    return []


def rewrite(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    m = to_ir(model)
    cut: set[int] = set()
    seeds = 0
    for out in m.graph.outputs:
        concat = out.producer()
        if concat is None or concat.op_type != "Concat" or len(out.uses()) or id(concat) in cut:
            continue
        seeds += 1
        cut.add(id(concat))
        for v in concat.inputs:
            cut.update(_activation_chain(v))
    if not seeds:
        return model, 0
    return cut_to_host(model, m, cut), seeds


RULE = GraphRule(
    id="split-packed-output",
    summary="an output Concat of differently scaled tensors (boxes + Sigmoid scores) is assembled on the host, "
            "so each part leaves the device with its own quantization scale",
    ops=(),
    output_ops=("Concat",),
    rewrite=rewrite,
)
