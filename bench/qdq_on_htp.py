"""QDQ graphs on the simulated HTP (QNN EP, no CPU fallback) against a compare work directory's FP32 outputs.

    PYTHONPATH=. /work/venvs/trained/bin/python bench/qdq_on_htp.py --work bench/out/quant-compare/deepsort_mobilenetv2 A.onnx B.onnx

The same samples `bench/quant_error_split.py` scores on the CPU, so the two agree or disagree like for like.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from bot import metrics as M
    from bot import samples as S
    from bot.backends import ort_qnn
    from bot.spec.schema import TargetSpec

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=str(ROOT / "bench/out/quant-compare/deepsort_mobilenetv2"))
    ap.add_argument("--soc", default="SM8650")
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    work = Path(a.work)
    samples, golden = S.load(work / "load/samples.npz"), S.load(work / "load/golden.npz")
    name = list(golden[0])[0]
    for path in a.models:
        t = time.perf_counter()
        try:
            sess = ort_qnn._ort().InferenceSession(path, ort_qnn.session_options(TargetSpec(soc=a.soc)))
        except Exception as e:  # noqa: BLE001 — a refused graph is a row too
            print(f"{path}: the HTP refused it: {str(e)[:200]}", flush=True)
            continue
        inp = sess.get_inputs()[0].name
        outs = [sess.run(None, {inp: s[inp]})[0] for s in samples]
        per = [M.cosine(g[name], o) for g, o in zip(golden, outs)]
        pooled = M.cosine(M.concat([g[name] for g in golden]), M.concat(outs))
        print(f"{path}: HTP pooled {pooled:.4f} worst {min(per):.4f} ({time.perf_counter() - t:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
