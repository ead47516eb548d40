"""resize-to-htp: nearest Resize forms the QNN HTP rejects → an equivalent accepted form.

What onnxruntime-qnn 2.7 (HTP v75, SM8650) does with `Resize` (tiny Conv → Resize → Concat graphs,
float and QDQ from `get_qnn_qdq_config` + `quantize`, `scales` and `sizes` alike):
- accepted: nearest with asymmetric+floor (what torch exports for `nn.Upsample(scale_factor=2,
  mode='nearest')` with both the TorchScript exporter at opset 17 and the dynamo exporter at 18),
  half_pixel+floor / round_prefer_floor / round_prefer_ceil, align_corners+round_prefer_floor,
  pytorch_half_pixel+round_prefer_floor, tf_half_pixel_for_nn+floor; linear with half_pixel,
  align_corners, asymmetric, pytorch_half_pixel; cubic.
- rejected (REASON verbatim):
  `QNN EP: ResizeNearestNeighbor on the NPU does not support the combination of nearest_mode ==
  'ceil' or 'round_prefer_floor' and transformation_mode == 'asymmetric'.` (this is ONNX's default
  nearest_mode with asymmetric), `QNN EP: Resize with tf_half_pixel_for_nn does not support
  nearest_mode 'round_prefer_floor'. Only 'floor' is supported.`; the library also carries
  `Resize on the NPU does not support the combination of nearest_mode == 'floor' and
  transformation_mode == 'pytorch_half_pixel'` and `only supports 'round_prefer_ceil' if
  transformation mode is 'align_corners'`. In QDQ form the rejection shows as the unit's
  DequantizeLinear nodes with the reason on the Resize.
- the YOLOv8 neck (Conv/SiLU → Upsample ×2 → Concat, plus the SPPF output reused by a later
  Concat) built in miniature at 40×40 and 320×320, float and QDQ, was fully placed: the
  "Validation FAILED … (Resize)" of the zoo run did not reproduce on tiny graphs, so that report
  is either a form listed above or something model-specific still to be traced on the full model.

The rewrite is exact: for a nearest Resize with static shapes in a rejected form, it computes the
source index each output position reads on every axis (ONNX's coordinate transform and rounding),
then looks for an accepted (coordinate_transformation_mode, nearest_mode) that reads the same
indices — e.g. asymmetric+round_prefer_floor at ×2 is asymmetric+floor — and emits that Resize
with explicit `sizes`. When none matches it emits one Gather per resized axis with the constant
index map (Gather is placed by the HTP).
"""

from __future__ import annotations

import numpy as np
from onnxscript.rewriter import pattern

from bot.graph.irutil import attr, const, static_shape
from bot.graph.rule import GraphRule

ACCEPTED = [  # nearest forms the HTP places, preferred first
    ("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"), ("half_pixel", "floor"),
    ("align_corners", "round_prefer_floor"), ("pytorch_half_pixel", "round_prefer_floor"),
    ("tf_half_pixel_for_nn", "floor"), ("half_pixel", "round_prefer_ceil"),
]
REJECTED = {
    ("asymmetric", "ceil"), ("asymmetric", "round_prefer_floor"), ("asymmetric", "round_prefer_ceil"),
    ("tf_half_pixel_for_nn", "ceil"), ("tf_half_pixel_for_nn", "round_prefer_floor"),
    ("tf_half_pixel_for_nn", "round_prefer_ceil"), ("pytorch_half_pixel", "floor"),
    ("pytorch_half_pixel", "ceil"), ("pytorch_half_pixel", "round_prefer_ceil"),
    ("align_corners", "floor"), ("align_corners", "ceil"), ("half_pixel", "ceil"),
}


def index_map(n_in: int, n_out: int, scale: float, ctm: str, nm: str) -> np.ndarray:
    """Source index per output position for one axis (ONNX Resize, nearest, no roi)."""
    x = np.arange(n_out, dtype=np.float64)
    if ctm == "half_pixel":
        o = (x + 0.5) / scale - 0.5
    elif ctm == "pytorch_half_pixel":
        o = (x + 0.5) / scale - 0.5 if n_out > 1 else np.zeros_like(x)
    elif ctm == "align_corners":
        o = x * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros_like(x)
    elif ctm == "asymmetric":
        o = x / scale
    elif ctm == "tf_half_pixel_for_nn":
        o = (x + 0.5) / scale
    else:
        raise ValueError(ctm)
    if nm == "floor":
        i = np.floor(o)
    elif nm == "ceil":
        i = np.ceil(o)
    elif nm == "round_prefer_floor":
        i = np.ceil(o - 0.5)
    elif nm == "round_prefer_ceil":
        i = np.floor(o + 0.5)
    else:
        raise ValueError(nm)
    return np.clip(i, 0, n_in - 1).astype(np.int64)


def _plan(node, x, y):
    if attr(node, "mode", "nearest") != "nearest" or attr(node, "antialias", 0):
        return None
    ctm = attr(node, "coordinate_transformation_mode", "half_pixel")
    nm = attr(node, "nearest_mode", "round_prefer_floor")
    if (ctm, nm) not in REJECTED or (attr(node, "axes") is not None):
        return None
    si, so = static_shape(x), static_shape(y)
    if si is None or so is None or len(si) != len(so):
        return None
    scales = const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if scales is not None and scales.size == 0:
        scales = None
    sc = [float(s) for s in scales] if scales is not None else [o / i for i, o in zip(si, so)]
    maps = [index_map(i, o, s, ctm, nm) for i, o, s in zip(si, so, sc)]
    for cand in ACCEPTED:
        if all(np.array_equal(m, index_map(i, o, o / i, *cand)) for m, i, o in zip(maps, si, so)):
            return {"form": cand, "sizes": list(so)}
    return {"gather": [(ax, m) for ax, (m, i) in enumerate(zip(maps, si)) if not np.array_equal(m, np.arange(i))]}


def _target(op, x):
    return op.Resize(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["y"])


def _check(ctx, x, y, **_):
    return _plan(y.producer(), x, y) is not None


def _replace(op, x, y, **_):
    p = _plan(y.producer(), x, y)
    if "form" in p:
        ctm, nm = p["form"]
        sizes = op.Constant(value_ints=p["sizes"])
        return op.Resize(x, None, None, sizes, mode="nearest", coordinate_transformation_mode=ctm, nearest_mode=nm)
    out = x
    for ax, m in p["gather"]:
        out = op.Gather(out, op.Constant(value_ints=[int(v) for v in m]), axis=ax)
    return out


PATTERN = pattern.RewriteRule(_target, _replace, _check, name="resize-to-htp")


RULE = GraphRule(
    id="resize-to-htp",
    summary="nearest Resize in a form the HTP rejects → same-index accepted Resize form (or constant Gather)",
    ops=("Resize",),
    reasons=(),  # any: in QDQ form the reason sits on the unit, not the Resize
    patterns=(PATTERN,),
)
