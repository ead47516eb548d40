#!/usr/bin/env python3
"""Export a model folder (with its aipc.yaml) to ONNX and say exactly what went wrong, if anything.

Usage: export_check.py MODEL_DIR [--exporter torchscript|dynamo] [--opset N] [--out model.onnx]
Exit 0 when the export succeeds (and prints ops/dynamic dims), 1 with the exporter's message.
"""

import argparse
import io
import json
import sys
import tempfile
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("--exporter", choices=["torchscript", "dynamo"], default=None)
    ap.add_argument("--opset", type=int, default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    import torch

    from bot.agent.graph_info import summarize
    from bot.samples import random_inputs
    from bot.spec import load_spec
    from bot.model_code import build_module

    spec, folder = load_spec(Path(a.model_dir))
    exporter = a.exporter or spec.export.exporter
    opset = a.opset or spec.export.opset
    module = build_module(folder, spec.entry)
    sample = random_inputs(spec.inputs, 1, 0)[0]
    args = tuple(torch.from_numpy(sample[i.name]) for i in spec.inputs)
    out = Path(a.out or Path(tempfile.mkdtemp()) / "model.onnx")
    chatter = io.StringIO()
    try:
        with warnings.catch_warnings(), redirect_stdout(chatter), redirect_stderr(chatter):
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                torch.onnx.export(module, args, input_names=[i.name for i in spec.inputs], opset_version=opset,
                                  dynamo=True).save(str(out))
            else:
                torch.onnx.export(module, args, str(out), input_names=[i.name for i in spec.inputs],
                                  opset_version=opset, dynamo=False)
    except Exception as e:
        print(f"EXPORT FAILED ({exporter}, opset {opset}): {type(e).__name__}: {str(e).strip()[:1500]}")
        return 1
    info = summarize(out)
    print(f"exported ({exporter}, opset {opset}) → {out}")
    print(json.dumps({k: info[k] for k in ("inputs", "outputs", "nodes", "ops", "int64_tensors", "rank_gt4")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
