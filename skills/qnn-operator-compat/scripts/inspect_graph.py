#!/usr/bin/env python3
"""Summarize an ONNX graph for choosing a rewrite: opset, I/O, op counts, int64 and rank>4 tensors.

Usage: inspect_graph.py MODEL.onnx [--op OPTYPE] [--limit N]
With --op, also lists every node of that type with input/output shapes and attributes.
"""

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--op", default=None)
    ap.add_argument("--limit", type=int, default=40)
    a = ap.parse_args()
    from bot.agent.graph_info import summarize

    if not Path(a.model).exists():
        print(f"no such file: {a.model}", file=sys.stderr)
        return 2
    print(json.dumps(summarize(Path(a.model), op=a.op, limit=a.limit), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
