#!/usr/bin/env python3
"""Per-layer comparison of a QDQ graph against its float graph: where does quantization break?

Usage: compare_layers.py FLOAT.onnx QDQ.onnx [--samples SAMPLES.npz] [--bar 0.99] [--top 10]
Without --samples, random inputs in [0, 1) are used. Prints the first layer below the bar and the
layers that add the most error (their tensor names are what int16 overrides name).
"""

import argparse
import math
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("float_onnx")
    ap.add_argument("qdq_onnx")
    ap.add_argument("--samples", default=None)
    ap.add_argument("--bar", type=float, default=0.99)
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    import numpy as np
    import onnx

    from bot.repair.localize import localize, worst_layers

    if a.samples:
        from bot.samples import load

        feeds = load(Path(a.samples))
    else:
        m = onnx.load(a.float_onnx, load_external_data=False)
        inits = {i.name for i in m.graph.initializer}
        rng = np.random.default_rng(0)
        feeds = [{i.name: rng.random([d.dim_value for d in i.type.tensor_type.shape.dim], dtype=np.float32)
                  for i in m.graph.input if i.name not in inits} for _ in range(2)]
    layers, first = localize(Path(a.float_onnx), Path(a.qdq_onnx), feeds, bar=a.bar)
    if not layers:
        print("no quantized activations matched float tensors (is the second file a QDQ graph of the first?)")
        return 2
    fmt = (lambda v: f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else str(v))
    print(f"{len(layers)} quantized activations compared; bar cosine {a.bar}")
    print(f"first below the bar: {first.tensor} ({first.op}) cosine {fmt(first.cosine)}" if first else
          "every layer is at or above the bar")
    print("layers adding the most error (tensor, op, cosine, SQNR dB, SQNR drop dB):")
    worst = set(worst_layers(layers, 0.0, minimum=a.top))
    for e in layers:
        if e.tensor in worst:
            print(f"  {e.tensor}\t{e.op}\t{fmt(e.cosine)}\t{fmt(e.sqnr_db)}\t{fmt(e.sqnr_drop_db)}")
    return 1 if first else 0


if __name__ == "__main__":
    sys.exit(main())
