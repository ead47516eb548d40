#!/usr/bin/env python3
"""Compare reference outputs with deployed ones: cosine, SQNR, PSNR, max-abs per output.

Usage: compare_outputs.py REF.(npz|npy) OUT.(npz|npy) [--bar 0.95]
Arrays are matched by name when both are .npz with shared names, otherwise by order.
Exit 1 when any output's cosine is below the bar (or undefined).
"""

import argparse
import math
import sys


def _load(path):
    import numpy as np

    data = np.load(path, allow_pickle=False)
    if hasattr(data, "files"):
        return {k: data[k] for k in data.files}
    return {"output": data}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref")
    ap.add_argument("out")
    ap.add_argument("--bar", type=float, default=0.95)
    a = ap.parse_args()
    from bot import metrics as M

    ref, out = _load(a.ref), _load(a.out)
    pairs = [(k, ref[k], out[k]) for k in ref if k in out] or [
        (f"{k1}~{k2}", ref[k1], out[k2]) for k1, k2 in zip(ref, out)]
    if not pairs:
        print("nothing to compare")
        return 2
    bad = False
    for name, r, o in pairs:
        if r.shape != o.shape:
            print(f"{name}: shape {r.shape} vs {o.shape} (interface mismatch)")
            bad = True
            continue
        s = M.summary(r, o)
        cos = s.get("cosine", float("nan"))
        ok = isinstance(cos, float) and math.isfinite(cos) and cos >= a.bar
        bad |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: " + ", ".join(f"{k} {v:.5g}" for k, v in s.items()))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
