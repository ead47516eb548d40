#!/usr/bin/env python3
"""Ask the QNN HTP backend which nodes of an ONNX graph it rejects, and why.

Usage: probe_ops.py MODEL.onnx [--soc SM8650] [--json]
Prints one line per rejected node ("op name: REASON") and the nodes that fell back to the CPU.
Exit 0 when every node is placed on the HTP, 1 otherwise.
"""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--soc", default=None, help="target SoC (default: the bot's default)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from bot.backends.ort_qnn import OrtQnnBackend
    from bot.spec.schema import TargetSpec

    target = TargetSpec(soc=a.soc) if a.soc else TargetSpec()
    p = OrtQnnBackend().probe(Path(a.model), target)
    if a.json:
        print(json.dumps({"total_nodes": p.total_nodes, "backend_nodes": p.backend_nodes,
                          "fallback_nodes": p.fallback_nodes, "rejected": [asdict(n) for n in p.rejected]}, indent=1))
    else:
        print(f"{p.backend_nodes}/{p.total_nodes} nodes on the HTP ({target.soc})")
        for n in p.rejected:
            print(f"REJECTED {n.op} {n.name}: {n.reason}")
        for n in p.fallback_nodes:
            print(f"CPU      {n}")
    return 0 if p.full else 1


if __name__ == "__main__":
    sys.exit(main())
