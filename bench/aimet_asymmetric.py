"""AIMET QuantSim with the HTP v75 config's weights made asymmetric, with and without its Conv + ReLU6
supergroup enforced by hand (issue 14): the two AIMET defaults `bench/quant_error_split.py` found costly.

    PYTHONPATH=. /work/venvs/aimet/bin/python bench/aimet_asymmetric.py --work bench/out/quant-compare/deepsort_mobilenetv2

Reads a `bench/trained_quant_compare.py` work directory (samples, golden outputs, calibration, the optimize
stage's float graph); writes `asymmetric.onnx` and `asymmetric_conv_relu6.onnx` (QDQ) there and prints
their cosines against FP32 on onnxruntime's CPU, as written. Biases stay symmetric (int32).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main() -> int:
    import onnx
    from aimet_onnx.quantsim import QuantizationSimModel

    from bot import samples as S
    from bot.quant.aimet_engine import config_dir
    from quant_error_split import scores, session, without_conv_clip_quantizers

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=str(HERE / "out/quant-compare/deepsort_mobilenetv2"))
    work = Path(ap.parse_args().work)
    samples, golden = S.load(work / "load/samples.npz"), S.load(work / "load/golden.npz")
    calib = S.load(work / "load/calibration.npz")
    cfg = copy.deepcopy(json.loads((config_dir() / "htp_quantsim_config_v75.json").read_text()))
    cfg["defaults"]["params"]["is_symmetric"] = "False"
    for op in cfg.get("op_type", {}).values():
        weight = op.get("params", {}).get("weight") if isinstance(op.get("params"), dict) else None
        if isinstance(weight, dict) and "is_symmetric" in weight:
            weight["is_symmetric"] = "False"
    cfg["params"] = {**cfg.get("params", {}), "bias": {"is_quantized": "True", "is_symmetric": "True"}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
    t = time.perf_counter()
    sim = QuantizationSimModel(onnx.load(str(work / "optimize/model.onnx")), param_type="int8",
                               activation_type="int8", config_file=f.name)
    sim.compute_encodings(calib)
    qdq = sim.to_onnx_qdq(export_int32_bias=True, prequantize_constants=True)
    seconds = round(time.perf_counter() - t, 1)
    onnx.save(qdq, str(work / "asymmetric.onnx"))
    print(json.dumps({"variant": "w8a8 AIMET QuantSim, v75 config, asymmetric weights", "seconds": seconds,
                      "as written": scores(session(qdq, False), samples, golden)}), flush=True)
    n = without_conv_clip_quantizers(qdq)
    onnx.save(qdq, str(work / "asymmetric_conv_relu6.onnx"))
    print(json.dumps({"variant": f"the same, {n} Conv→Clip quantizers removed (the config's Conv + Clip supergroup)",
                      "as written": scores(session(qdq, False), samples, golden)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
