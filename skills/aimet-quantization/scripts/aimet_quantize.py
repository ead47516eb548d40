#!/usr/bin/env python3
"""Run the bot's AIMET engine on a float ONNX graph: QDQ model + AIMET encodings, seconds per step.

Usage: aimet_quantize.py FLOAT.onnx CALIBRATION.npz OUT_DIR [--soc SM8650] [--precision w8a8]
       [--techniques cle,seqmse]
Needs aimet-onnx (the bot's `[aimet]` extra). Writes OUT_DIR/model.onnx (QDQ), aimet.encodings and
aimet_float.onnx.
"""

import argparse
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("float_onnx")
    ap.add_argument("calibration", help="a samples .npz as the bot's load stage writes it")
    ap.add_argument("out_dir")
    ap.add_argument("--soc", default="SM8650")
    ap.add_argument("--precision", default="w8a8", choices=["w8a8", "w8a16"])
    ap.add_argument("--techniques", default="", help="comma-separated: cle, seqmse, adaround")
    a = ap.parse_args()
    from bot.quant import aimet_engine as A
    from bot.samples import load
    from bot.targets import SOCS

    if why := A.unavailable():
        print(why, file=sys.stderr)
        return 2
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    opts = A.AimetOptions.from_opts({"techniques": [t for t in a.techniques.split(",") if t]})
    run = A.quantize(Path(a.float_onnx), out / "model.onnx", out, load(Path(a.calibration)), a.precision,
                     SOCS[a.soc.upper()].htp_arch, opts)
    print(f"config {run.config}; techniques {list(run.techniques) or 'none'}")
    for step, s in run.seconds.items():
        print(f"  {step}\t{s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
