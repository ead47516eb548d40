"""The bot's eight stages written as one bare script with no bot: the same library calls, no
store, no keys, no manifest, no forge. `bench/bench_pipeline.py` times it against `aipc deploy`.

    python bench/bare_toolchain.py models/esrgan_tiny OUT_DIR
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import onnxruntime_qnn
import onnxslim
import torch
import yaml
from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

warnings.filterwarnings("ignore")
SOC = {"SM8650": ("57", "75")}


def cosine(a, b):
    a, b = np.concatenate([x.ravel() for x in a]).astype(np.float64), np.concatenate([x.ravel() for x in b]).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main(model_dir: str, out: str) -> int:
    folder, out = Path(model_dir).resolve(), Path(out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    d = yaml.safe_load((folder / "aipc.yaml").read_text())
    inp = d["inputs"][0]
    soc_model, arch = SOC[d.get("target", {}).get("soc", "SM8650")]
    act = {"w8a8": QuantType.QUInt8, "w8a16": QuantType.QUInt16}[d.get("target", {}).get("precision", "w8a16")]

    # load: module, samples, golden, calibration
    file, fn = d["entry"].split(":")
    spec = importlib.util.spec_from_file_location("m", folder / file)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(folder))
    spec.loader.exec_module(mod)
    module = getattr(mod, fn)().eval()
    lo, hi = inp.get("range", [0, 1])
    rng = np.random.default_rng(d.get("validation", {}).get("seed", 0))
    samples = [rng.uniform(lo, hi, inp["shape"]).astype(np.float32) for _ in range(d.get("validation", {}).get("samples", 2))]
    rng = np.random.default_rng(d.get("calibration", {}).get("seed", 1))
    calib = [rng.uniform(lo, hi, inp["shape"]).astype(np.float32) for _ in range(d.get("calibration", {}).get("samples", 8))]
    with torch.no_grad():
        golden = [module(torch.from_numpy(s)).numpy() for s in samples]
    np.savez(out / "golden.npz", *golden)

    # export + checker + CPU parity
    f32 = out / "model.onnx"
    torch.onnx.export(module, (torch.from_numpy(samples[0]),), str(f32), input_names=[inp["name"]], opset_version=17,
                      dynamo=False)
    onnx.checker.check_model(onnx.load(str(f32)), full_check=True)
    cpu = ort.InferenceSession(str(f32), providers=["CPUExecutionProvider"])
    assert cosine(golden, [cpu.run(None, {inp["name"]: s})[0] for s in samples]) > 0.9999

    # optimize + parity
    opt = out / "opt.onnx"
    onnx.save(onnx.shape_inference.infer_shapes(onnxslim.slim(onnx.load(str(f32))), data_prop=True), str(opt))
    cpu = ort.InferenceSession(str(opt), providers=["CPUExecutionProvider"])
    assert cosine(golden, [cpu.run(None, {inp["name"]: s})[0] for s in samples]) > 0.9999

    # compat: the EP's verbose validation log, in a child process
    probe = ("import sys,onnxruntime as o,onnxruntime_qnn as q;o.register_execution_provider_library('QNNExecutionProvider',"
             "q.get_library_path());so=o.SessionOptions();so.log_severity_level=0;"
             "so.add_provider_for_devices([d for d in o.get_ep_devices() if d.ep_name=='QNNExecutionProvider'],"
             f"{{'backend_path':q.get_qnn_htp_path(),'htp_arch':'{arch}','soc_model':'{soc_model}'}});o.InferenceSession(sys.argv[1],so)")
    log = subprocess.run([sys.executable, "-c", probe, str(opt)], capture_output=True, text=True).stderr
    assert "Validation FAILED" not in log

    # quantize (+ host check of the QDQ graph)
    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{inp["name"]: c} for c in calib])

        def get_next(self):
            return next(self.it, None)

    pre, qdq = out / "pre.onnx", out / "qdq.onnx"
    src = pre if qnn_preprocess_model(str(opt), str(pre), fuse_layernorm=True) else opt
    cwd = os.getcwd()
    os.chdir(out)
    # per-channel weight scales, as the bot's quantize stage does by default (quantization.per_channel)
    quantize(str(src), str(qdq), get_qnn_qdq_config(str(src), Reader(), activation_type=act, weight_type=QuantType.QUInt8,
                                                     per_channel=(d.get("quantization") or {}).get("per_channel", True)))
    os.chdir(cwd)
    cpu = ort.InferenceSession(str(qdq), providers=["CPUExecutionProvider"])
    [cpu.run(None, {inp["name"]: s}) for s in samples]

    # compile: EPContext binary with CPU fallback disabled
    ort.register_execution_provider_library("QNNExecutionProvider", onnxruntime_qnn.get_library_path())
    devs = [d for d in ort.get_ep_devices() if d.ep_name == "QNNExecutionProvider"]

    def options(ctx=None):
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.add_provider_for_devices(devs, {"backend_path": onnxruntime_qnn.get_qnn_htp_path(), "htp_arch": arch,
                                           "soc_model": soc_model, "enable_htp_fp16_precision": "1"})
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        if ctx:
            so.add_session_config_entry("ep.context_enable", "1")
            so.add_session_config_entry("ep.context_embed_mode", "0")
            so.add_session_config_entry("ep.context_file_path", str(ctx))
        return so

    pkg = out / "package"
    pkg.mkdir()
    ort.InferenceSession(str(qdq), options(pkg / "model_ctx.onnx"))

    # validate on the HTP
    sess = ort.InferenceSession(str(pkg / "model_ctx.onnx"), options())
    outs = [sess.run(None, {inp["name"]: s})[0] for s in samples]
    print(f"cosine {cosine(golden, outs):.6f}")

    # package: a run script, smoke-run in a child process
    bot_dir = Path(__file__).resolve().parent.parent / "bot"
    shutil.copyfile(bot_dir / "stages/assets/run_context_binary.py", pkg / "run.py")
    shutil.copyfile(bot_dir / "plain_json.py", pkg / "plain_json.py")  # what run.py imports from beside itself
    (pkg / "interface.json").write_text(
        f'{{"entry": "model_ctx.onnx", "target": {{"htp_arch": {arch}, "soc_model": {soc_model}}}, '
        f'"inputs": [{{"name": "{inp["name"]}", "shape": {inp["shape"]}, "dtype": "float32"}}]}}')
    np.save(out / "in.npy", samples[0])
    subprocess.run([sys.executable, str(pkg / "run.py"), "--input", f"{inp['name']}={out / 'in.npy'}", "--out",
                    str(out / "run_out")], check=True, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
