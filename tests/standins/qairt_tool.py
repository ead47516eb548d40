#!/usr/bin/env python3
"""Stand-in for the QAIRT SDK command-line tools, honouring their documented contract.

Not Qualcomm software. Each tool parses the flags the real one documents (shared/knowledge/qairt.md
§1) strictly — an unknown or missing flag is an error, so command construction is really checked —
reads and writes the documented file formats (input_list, Result_N/<tensor>.raw float32,
qnn-profile-viewer CSV) and computes outputs with onnxruntime on the CPU from the ONNX the converter
received, so the bot's validation sees real numbers. A stand-in "DLC" / context binary is one JSON
header line followed by the ONNX bytes.

Usage: qairt_tool.py <tool> [args...]   (the SDK tree's bin/<target>/<tool> wrappers call this)

Test hooks (environment):
  AIPC_STANDIN_LOG          append one JSON line per invocation (tool, argv, cwd, extras)
  AIPC_STANDIN_FAIL         "tool=mode[,tool=mode]"; mode: exit (stderr text, status 3),
                            nooutput (status 0, no output file), garbage (wrong-sized output)
  AIPC_STANDIN_STDERR       the text `exit` mode prints (default: a generic error)
  AIPC_STANDIN_UNSUPPORTED  op types the converters refuse (default "Einsum,DynamicQuantizeLinear")
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

MAGIC = b"AIPC-STANDIN "


def log(tool: str, **extra) -> None:
    path = os.environ.get("AIPC_STANDIN_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"tool": tool, "argv": sys.argv[2:], "cwd": os.getcwd(), **extra}) + "\n")


def fail_mode(tool: str) -> str | None:
    for item in filter(None, os.environ.get("AIPC_STANDIN_FAIL", "").split(",")):
        name, _, mode = item.partition("=")
        if name == tool:
            return mode
    return None


def die(msg: str, code: int = 1):
    sys.stderr.write(msg.rstrip("\n") + "\n")
    sys.exit(code)


def maybe_fail(tool: str) -> str | None:
    mode = fail_mode(tool)
    if mode == "exit":
        die(os.environ.get("AIPC_STANDIN_STDERR", f"[ ERROR ] {tool}: stand-in failure requested"), 3)
    return mode


# ── container files ────────────────────────────────────────────────────────────────────────────
def write_container(path: Path, header: dict, onnx_bytes: bytes) -> None:
    path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + onnx_bytes)


def read_container(path: Path, what: str) -> tuple[dict, bytes]:
    if not path.is_file():
        die(f"[ ERROR ] {what}: file not found: {path}")
    data = path.read_bytes()
    if not data.startswith(MAGIC) or b"\n" not in data:
        die(f"[ ERROR ] {what}: {path} is not a valid container (bad magic)")
    head, _, body = data[len(MAGIC):].partition(b"\n")
    return json.loads(head), body


def sanitize(name: str) -> str:
    s = re.sub(r"\W", "_", name)
    return "_" + s if s[:1].isdigit() else s


def onnx_io(onnx_bytes: bytes):
    import onnx

    m = onnx.load_from_string(onnx_bytes)
    inits = {i.name for i in m.graph.initializer}
    ins = [(v.name, [d.dim_value for d in v.type.tensor_type.shape.dim]) for v in m.graph.input if v.name not in inits]
    return m, ins


# ── input_list ─────────────────────────────────────────────────────────────────────────────────
def read_input_list(path: Path, inputs: list[tuple[str, list[int]]], layout: str = "NCHW"):
    """Every line → {input: float32 array}; checks the documented single/multi-input forms and sizes."""
    import numpy as np

    if not path.is_file():
        die(f"[ ERROR ] input list not found: {path}")
    feeds = []
    for n, line in enumerate(path.read_text().splitlines()):
        line = line.strip()
        if not line or line[0] in "#%":
            continue
        parts = line.split(" ")
        if len(inputs) > 1 and not all(":=" in p for p in parts):
            die("For multiple inputs, input lines must be of the form: <input_layer_name>:=<input_layer_path>"
                "[<space><input_layer_name>:=<input_layer_path>]")
        if len(parts) != len(inputs):
            die(f"[ ERROR ] Graph contains {len(inputs)} inputs, but only found input data for {len(parts)} inputs "
                f"from user (line {n + 1})")
        feed = {}
        for (name, shape), part in zip(inputs, parts):
            given, _, p = part.rpartition(":=") if ":=" in part else ("", "", part)
            if given and given != name:
                die(f"[ ERROR ] input list line {n + 1} names {given!r}, the graph's input is {name!r}")
            f = Path(p)
            if not f.is_file():
                die(f"[ ERROR ] input file not found: {p}")
            arr = np.fromfile(f, dtype=np.float32)
            if arr.size != int(np.prod(shape)):
                die(f"[ ERROR ] {p}: {arr.nbytes} bytes, the input {name} {shape} needs {4 * int(np.prod(shape))}")
            if layout == "NHWC" and len(shape) == 4:
                arr = arr.reshape(shape[0], shape[2], shape[3], shape[1]).transpose(0, 3, 1, 2)
            feed[name] = arr.reshape(shape)
        feeds.append(feed)
    if not feeds:
        die(f"[ ERROR ] input list {path} has no inputs")
    return feeds


def check_overrides(path: Path) -> dict:
    d = json.loads(path.read_text())
    if set(d) - {"activation_encodings", "param_encodings", "version"}:
        die(f"[ ERROR ] quantization overrides: unknown keys {sorted(d)}")
    for section in ("activation_encodings", "param_encodings"):
        for name, encs in d.get(section, {}).items():
            for e in (encs if isinstance(encs, list) else [encs]):
                if e.get("bitwidth") not in (4, 8, 16, 32) or not e.get("scale", 0) > 0 or e["min"] > e["max"] \
                        or not isinstance(e.get("offset"), int):
                    die(f"[ ERROR ] quantization overrides: bad encoding for {name}: {e}")
    return d


# ── tools ──────────────────────────────────────────────────────────────────────────────────────
def P(prog: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, add_help=True)


def converter(tool: str, argv: list[str]) -> int:
    ap = P(tool)
    ap.add_argument("--input_network", "-i", required=True)
    ap.add_argument("--output_path", "-o")
    ap.add_argument("--dry_run", nargs="?", const="info")
    ap.add_argument("--quantization_overrides")
    if tool == "qairt-converter":
        ap.add_argument("--float_bitwidth", type=int, choices=[16, 32])
        ap.add_argument("--preserve_onnx_output_order", action="store_true")
    else:
        ap.add_argument("--preserve_io", nargs="*")
    a = ap.parse_args(argv)
    mode = maybe_fail(tool)
    src = Path(a.input_network)
    if src.suffix != ".onnx" or not src.is_file():
        die(f"[ ERROR ] cannot load framework model {src}")
    body = src.read_bytes()
    m, _ = onnx_io(body)
    refused = set(filter(None, os.environ.get("AIPC_STANDIN_UNSUPPORTED", "Einsum,DynamicQuantizeLinear").split(",")))
    bad = [n for n in m.graph.node if n.op_type in refused]
    for n in bad:
        sys.stderr.write(f"ERROR - Node {n.name}: 'No translation registered for op type onnx_{n.op_type.lower()}.'\n")
    if bad:
        return 1
    overrides = check_overrides(Path(a.quantization_overrides)) if a.quantization_overrides else None
    log(tool, overrides=overrides)
    if a.dry_run:
        print(f"INFO - Dry run: {len(m.graph.node)} ops, all translatable")
        return 0
    out = Path(a.output_path or src.with_suffix(".dlc"))
    if mode == "nooutput":
        print("INFO - Conversion complete")
        return 0
    if mode == "garbage":
        out.write_bytes(b"\x00garbage\xff")
        return 0
    layout = "NCHW" if tool == "qairt-converter" or (a.preserve_io is not None and "layout" in a.preserve_io) else "NHWC"
    write_container(out, {"kind": "dlc", "source": str(src), "float_bitwidth": getattr(a, "float_bitwidth", None),
                          "io_layout": layout, "overrides": overrides, "quantized": False}, body)
    print(f"INFO - Saved DLC to {out}")
    return 0


def quantizer(tool: str, argv: list[str]) -> int:
    ap = P(tool)
    ap.add_argument("--input_dlc", required=True)
    ap.add_argument("--output_dlc", required=True)
    ap.add_argument("--input_list", required=True)
    ap.add_argument("--act_bitwidth", type=int, choices=[8, 16], default=8)
    ap.add_argument("--weights_bitwidth", type=int, choices=[4, 8, 16], default=8)
    ap.add_argument("--bias_bitwidth", type=int, choices=[8, 32], default=8)
    ap.add_argument("--use_per_channel_quantization", action="store_true")
    ap.add_argument("--use_per_row_quantization", action="store_true")
    if tool == "qairt-quantizer":
        cal = ["min-max", "sqnr", "entropy", "mse", "percentile"]
        ap.add_argument("--act_quantizer_calibration", choices=cal, default="min-max")
        ap.add_argument("--param_quantizer_calibration", choices=cal, default="min-max")
        ap.add_argument("--quantization_overrides")
    else:
        ap.add_argument("--override_params", action="store_true")
    a = ap.parse_args(argv)
    mode = maybe_fail(tool)
    head, body = read_container(Path(a.input_dlc), tool)
    _, ins = onnx_io(body)
    feeds = read_input_list(Path(a.input_list), ins)
    overrides = check_overrides(Path(a.quantization_overrides)) if getattr(a, "quantization_overrides", None) else None
    if getattr(a, "override_params", False) and not head.get("overrides"):
        die("[ ERROR ] --override_params given but the DLC carries no quantization overrides")
    log(tool, overrides=overrides, calibration_samples=len(feeds), act_bitwidth=a.act_bitwidth,
        per_channel=a.use_per_channel_quantization)
    if mode == "nooutput":
        return 0
    out = Path(a.output_dlc)
    if mode == "garbage":
        out.write_bytes(b"\x00garbage")
        return 0
    head.update(quantized=True, act_bitwidth=a.act_bitwidth, weights_bitwidth=a.weights_bitwidth,
                per_channel=a.use_per_channel_quantization, quantizer_overrides=overrides,
                calibration_samples=len(feeds))
    write_container(out, head, body)
    print(f"[INFO] Quantized {len(feeds)} calibration inputs → {out}")
    return 0


def context_binary_generator(tool: str, argv: list[str]) -> int:
    ap = P(tool)
    ap.add_argument("--backend", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--dlc_path", required=True)
    ap.add_argument("--binary_file", required=True)
    ap.add_argument("--output_dir", default="./output")
    ap.add_argument("--config_file")
    a = ap.parse_args(argv)
    mode = maybe_fail(tool)
    for flag, want in ((a.backend, "libQnnHtp.so"), (a.model, "libQnnModelDlc.so")):
        if Path(flag).name != want or not Path(flag).is_file():
            die(f"[ ERROR ] Unable to load {flag}: expected the SDK's {want}")
    if a.binary_file.endswith(".bin"):
        die("[ ERROR ] --binary_file is a name without extension (the tool appends .bin)")
    head, body = read_container(Path(a.dlc_path), tool)
    device = {}
    if a.config_file:
        wrapper = json.loads(Path(a.config_file).read_text())
        ext = wrapper["backend_extensions"]
        if not Path(ext["shared_library_path"]).is_file():
            die(f"[ ERROR ] backend extensions library not found: {ext['shared_library_path']}")
        htp = json.loads(Path(ext["config_file_path"]).read_text())
        device = htp["devices"][0]
        if not re.fullmatch(r"v\d\d", device.get("dsp_arch", "")) or not isinstance(device.get("soc_id"), int):
            die(f"[ ERROR ] bad HTP device config {device}")
        if Path(a.dlc_path).stem not in htp["graphs"][0]["graph_names"]:
            die(f"[ ERROR ] graph {Path(a.dlc_path).stem} not named in the HTP config {htp['graphs']}")
    log(tool, device=device)
    if mode == "nooutput":
        print("Context binary generation complete")
        return 0
    out = Path(a.output_dir) / f"{a.binary_file}.bin"
    out.parent.mkdir(parents=True, exist_ok=True)
    if mode == "garbage":
        out.write_bytes(b"\x01")
        return 0
    write_container(out, {"kind": "qnn-context", "dsp_arch": device.get("dsp_arch"), "soc_id": device.get("soc_id"),
                          "dlc": head}, body)
    return 0


def graph_prepare(tool: str, argv: list[str]) -> int:
    ap = P(tool)
    ap.add_argument("--input_dlc", required=True)
    ap.add_argument("--output_dlc")
    ap.add_argument("--htp_socs", required=True)
    a = ap.parse_args(argv)
    mode = maybe_fail(tool)
    if not re.fullmatch(r"(sm|sa|qcs)\d+(,(sm|sa|qcs)\d+)*", a.htp_socs):
        die(f"[ ERROR ] --htp_socs: unknown SoC list {a.htp_socs!r} (lower-case ASIC ids, comma separated)")
    head, body = read_container(Path(a.input_dlc), tool)
    log(tool, socs=a.htp_socs)
    if mode == "nooutput":
        return 0
    out = Path(a.output_dlc or Path(a.input_dlc).with_name(Path(a.input_dlc).stem + "_cached.dlc"))
    head.update(htp_cache=a.htp_socs.split(","))
    write_container(out, head, body)
    return 0


def run_graph(tool: str, container: Path, input_list: Path, out_dir: Path, profiling: str | None,
              android: bool = False) -> int:
    import numpy as np
    import onnxruntime as ort

    mode = maybe_fail(tool)
    head, body = read_container(container, tool)
    layout = (head.get("dlc", head)).get("io_layout", "NCHW")
    if android:
        arch = head.get("dsp_arch") or "v" + str(os.environ.get("AIPC_STANDIN_ARCH", "75"))
        skel = f"libQnnHtp{arch.upper()}Skel.so" if tool.startswith("qnn") else f"libSnpeHtp{arch.upper()}Skel.so"
        adsp = os.environ.get("ADSP_LIBRARY_PATH", "").split(";")
        need = ["/system/lib/rfsa/adsp", "/system/vendor/lib/rfsa/adsp", "/dsp"]
        if not any((Path(d) / skel).is_file() for d in adsp) or not all(n in adsp for n in need):
            die(f"QnnDsp <E> Failed to load skel {skel}: ADSP_LIBRARY_PATH={os.environ.get('ADSP_LIBRARY_PATH')!r}")
        libs = os.environ.get("LD_LIBRARY_PATH", "").split(":")
        stub = "libQnnHtp.so" if tool.startswith("qnn") else "libSNPE.so"
        if not any((Path(d) / stub).is_file() for d in libs if d):
            die(f"[ ERROR ] Unable to load backend {stub}: LD_LIBRARY_PATH={os.environ.get('LD_LIBRARY_PATH')!r}")
    m, ins = onnx_io(body)
    feeds = read_input_list(input_list, ins, layout)
    sess = ort.InferenceSession(body, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    out_dir.mkdir(parents=True, exist_ok=True)
    times = []
    for i, feed in enumerate(feeds):
        t0 = time.perf_counter()
        vals = sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e6)
        res = out_dir / f"Result_{i}"
        res.mkdir(exist_ok=True)
        if mode == "nooutput":
            continue
        for name, v in zip(names, vals):
            v = np.asarray(v, dtype=np.float32)
            if layout == "NHWC" and v.ndim == 4:
                v = v.transpose(0, 2, 3, 1)
            (res / f"{sanitize(name)}.raw").write_bytes(b"\x00\x01\x02" if mode == "garbage" else v.tobytes())
    if profiling:
        if tool.startswith("qnn"):
            (out_dir / "qnn-profiling-data_0.log").write_text(json.dumps({"execute_us": times}))
        else:
            (out_dir / "SNPEDiag.log").write_text(json.dumps({"execute_us": times}))
    log(tool, samples=len(feeds), android=android, layout=layout)
    print(f"Finished executing {len(feeds)} inference(s)")
    return 0


def qnn_net_run(tool: str, argv: list[str], android: bool) -> int:
    ap = P(tool)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--model")
    g.add_argument("--retrieve_context")
    ap.add_argument("--backend", required=True)
    ap.add_argument("--input_list", required=True)
    ap.add_argument("--output_dir", default="./output")
    ap.add_argument("--profiling_level", choices=["basic", "detailed", "backend"])
    a = ap.parse_args(argv)
    if a.model:
        die("[ ERROR ] stand-in supports --retrieve_context only")
    backend = Path(a.backend)
    if backend.name != "libQnnHtp.so":
        die(f"[ ERROR ] Unable to load backend {a.backend}")
    if not android and not backend.is_file():
        die(f"[ ERROR ] Unable to load backend {a.backend}: no such file")
    return run_graph(tool, Path(a.retrieve_context), Path(a.input_list), Path(a.output_dir), a.profiling_level, android)


def snpe_net_run(tool: str, argv: list[str], android: bool) -> int:
    ap = P(tool)
    ap.add_argument("--container", required=True)
    ap.add_argument("--input_list", required=True)
    ap.add_argument("--output_dir", default="./output")
    ap.add_argument("--use_dsp", action="store_true")
    ap.add_argument("--profiling_level", choices=["off", "basic", "moderate", "detailed", "linting"])
    a = ap.parse_args(argv)
    head, _ = read_container(Path(a.container), tool)
    if a.use_dsp and not head.get("htp_cache"):
        sys.stderr.write("[WARN] no HTP offline cache in the DLC; preparing on device\n")
    return run_graph(tool, Path(a.container), Path(a.input_list), Path(a.output_dir), a.profiling_level, android)


def profile_viewer(tool: str, argv: list[str]) -> int:
    ap = P(tool)
    ap.add_argument("--input_log", required=True)
    ap.add_argument("--output")
    a = ap.parse_args(argv)
    maybe_fail(tool)
    data = json.loads(Path(a.input_log).read_text())
    rows = ["Message,Event,Value,Unit", "0,Init,1500,US"] + [f"{i},Execute,{us:.1f},US" for i, us in
                                                            enumerate(data["execute_us"])]
    if a.output:
        Path(a.output).write_text("\n".join(rows) + "\n")
    print("Execute Stats (Average):\n" + "".join(f"  NetRun: {us:.0f} us\n" for us in data["execute_us"]))
    return 0


def diagview(tool: str, argv: list[str]) -> int:
    ap = P(tool)
    ap.add_argument("--input_log", required=True)
    a = ap.parse_args(argv)
    data = json.loads(Path(a.input_log).read_text())
    print("".join(f"Total Inference Time: {us:.0f} us\n" for us in data["execute_us"]))
    return 0


def main() -> int:
    tool, argv = sys.argv[1], sys.argv[2:]
    android = tool.endswith("@android")
    tool = tool.removesuffix("@android")
    if tool in ("qairt-converter", "snpe-onnx-to-dlc"):
        return converter(tool, argv)
    if tool in ("qairt-quantizer", "snpe-dlc-quant"):
        return quantizer(tool, argv)
    if tool == "qnn-context-binary-generator":
        return context_binary_generator(tool, argv)
    if tool == "snpe-dlc-graph-prepare":
        return graph_prepare(tool, argv)
    if tool == "qnn-net-run":
        return qnn_net_run(tool, argv, android)
    if tool == "snpe-net-run":
        return snpe_net_run(tool, argv, android)
    if tool == "qnn-profile-viewer":
        return profile_viewer(tool, argv)
    if tool == "snpe-diagview":
        return diagview(tool, argv)
    die(f"stand-in: unknown tool {tool}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
