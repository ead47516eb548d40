"""QAIRT SDK on the host: the SDK's own converters, quantizers, HTP context-binary generator and net-run.

Located by `QAIRT_SDK_ROOT`, `QNN_SDK_ROOT` or `SNPE_ROOT` (first that holds `bin/<host>/`), else
the newest `/opt/qcom/aistack/qairt/<version>`.

QNN (target.runtime == "qnn"):
    qairt-converter (float ONNX → DLC)
    → qairt-quantizer (calibration input_list, --act_bitwidth 8|16, per-channel, calibration method,
      --quantization_overrides from the quantize stage's encodings, so 16-bit repairs carry over)
    → qnn-context-binary-generator (libQnnHtp.so + libQnnModelDlc.so --dlc_path, HTP config with the
      target's dsp_arch / soc_id) → `model.bin`
    run: qnn-net-run --retrieve_context model.bin (x86_64 HTP simulator on the host) with
      --profiling_level basic, latency from qnn-profile-viewer's CSV.
SNPE (target.runtime == "snpe"):
    snpe-onnx-to-dlc (--preserve_io layout: keep NCHW I/O) → snpe-dlc-quant
    → snpe-dlc-graph-prepare --htp_socs <soc> → `model_htp.dlc`; run: snpe-net-run --container --use_dsp.

probe: the converter's `--dry_run` on the float graph; what it names (e.g. "No translation registered
for op type onnx_einsum") becomes rejected nodes via `sdk_errors`. The converter only knows what it can
translate, not what the HTP will finalize: those refusals surface at compile from the context-binary
generator / graph-prepare, classified by the same table. We chose this over an ORT-based probe so the
placement reported is the SDK's own word, not another runtime's.

Every tool failure becomes `StageFailed(Failure(...))` with the tool's own text in `log`.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot.backends import qairt_io as Q
from bot.backends.base import Compiled, CompileRequest, Placement, RunResult, register
from bot.backends.sdk_errors import classify, tail, tool_failure
from bot.errors import BadInput
from bot.quant.aimet_engine import AIMET_ENCODINGS, write_sdk_overrides
from bot.records import FailureKind, RejectedNode, StageFailed
from bot.spec.schema import TargetSpec
from bot.targets import SOCS

ENV_VARS = ("QAIRT_SDK_ROOT", "QNN_SDK_ROOT", "SNPE_ROOT")
DEFAULT_ROOTS = "/opt/qcom/aistack/qairt/*"
ACT_BITS = {"w8a8": 8, "w8a16": 16}
CALIBRATION = {"minmax": "min-max", "entropy": "entropy", "percentile": "percentile", "mse": "mse"}
QNN_TOOLS = ("qairt-converter", "qairt-quantizer", "qnn-context-binary-generator", "qnn-net-run")
SNPE_TOOLS = ("snpe-onnx-to-dlc", "snpe-dlc-quant", "snpe-dlc-graph-prepare", "snpe-net-run")
TIMEOUT = float(os.environ.get("AIPC_SDK_TIMEOUT", "7200"))


def host_target() -> str:
    return {"x86_64": "x86_64-linux-clang", "aarch64": "aarch64-ubuntu-gcc9.4"}.get(platform.machine(),
                                                                                    "x86_64-linux-clang")


@dataclass
class Sdk:
    root: Path
    host: str

    def bin(self, tool: str, target: str | None = None) -> Path:
        return self.root / "bin" / (target or self.host) / tool

    def lib(self, name: str, target: str | None = None) -> Path:
        return self.root / "lib" / (target or self.host) / name

    def skel(self, name: str, arch: int) -> Path:
        return self.root / "lib" / f"hexagon-v{arch}" / "unsigned" / name

    def version(self) -> str:
        y = self.root / "sdk.yaml"
        if y.is_file():
            m = re.search(r"^\s*version\s*:\s*['\"]?([\w.]+)", y.read_text(errors="replace"), re.MULTILINE)
            if m:
                return m.group(1)
        m = re.search(r"\d+\.\d+\.\d+(?:\.\d+)?", self.root.name)
        return m.group(0) if m else "unknown"

    def env(self) -> dict[str, str]:
        """What `envsetup.sh` would set, enough for the tools to find their libraries and Python modules."""
        env = dict(os.environ)
        env["QAIRT_SDK_ROOT"] = env["QNN_SDK_ROOT"] = env["SNPE_ROOT"] = str(self.root)
        env["PATH"] = f"{self.root / 'bin' / self.host}{os.pathsep}{env.get('PATH', '')}"
        env["LD_LIBRARY_PATH"] = f"{self.root / 'lib' / self.host}{os.pathsep}{env.get('LD_LIBRARY_PATH', '')}"
        env["PYTHONPATH"] = f"{self.root / 'lib' / 'python'}{os.pathsep}{env.get('PYTHONPATH', '')}"
        return env

    def run(self, tool: str, args: list[str], *, stage: str, cwd: Path, expect: tuple[Path, ...] = (),
            logs: Path | None = None) -> str:
        """Run one SDK tool; its text back, or StageFailed with that text kept."""
        exe = self.bin(tool)
        cmd = [str(exe), *map(str, args)]
        if not exe.is_file():
            raise StageFailed(tool_failure(stage, tool, f"not found at {exe} (QAIRT SDK {self.version()} at {self.root})",
                                           "", command=cmd, kind=FailureKind.TOOL_ERROR))
        try:
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=TIMEOUT,
                                  env=self.env())
        except subprocess.TimeoutExpired as e:
            text = (e.stderr or "") + (e.stdout or "") if isinstance(e.stderr, str) else ""
            raise StageFailed(tool_failure(stage, tool, f"timed out after {TIMEOUT:.0f} s", text, command=cmd,
                                           kind=FailureKind.TOOL_ERROR)) from None
        except OSError as e:
            raise StageFailed(tool_failure(stage, tool, f"could not start: {e}", str(e), command=cmd,
                                           kind=FailureKind.TOOL_ERROR)) from None
        text = _joined(proc.stderr, proc.stdout)
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
            (logs / f"{tool}.log").write_text(f"$ {' '.join(cmd)}\n# exit {proc.returncode}\n{text}")
        if proc.returncode != 0:
            raise StageFailed(tool_failure(stage, tool, f"exited with status {proc.returncode}", text,
                                           command=cmd, returncode=proc.returncode))
        for p in expect:
            if not p.is_file() or p.stat().st_size == 0:
                raise StageFailed(tool_failure(stage, tool, f"exited 0 but wrote no {p.name}", text, command=cmd,
                                               returncode=0))
        return text


def _joined(stderr: str, stdout: str) -> str:
    """The tool's stderr first (where its errors go), then its stdout."""
    parts = [s.strip("\n") for s in (stderr, stdout) if s and s.strip()]
    return "\n".join(parts)


def find_sdk() -> tuple[Sdk | None, list[str]]:
    """The SDK this machine has, and every place looked (for the error that says where)."""
    host, looked = host_target(), []
    cands = [(v, os.environ.get(v)) for v in ENV_VARS if os.environ.get(v)]
    cands += [(DEFAULT_ROOTS, p) for p in sorted(glob.glob(DEFAULT_ROOTS), key=_version_key, reverse=True)]
    for var, root in cands:
        looked.append(f"{var}={root}" if var != DEFAULT_ROOTS else root)
        if (Path(root) / "bin" / host).is_dir():
            return Sdk(Path(root), host), looked
    if not cands:
        looked.append(f"{', '.join(ENV_VARS)} unset; {DEFAULT_ROOTS} empty")
    return None, looked


def _version_key(path: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", Path(path).name)) or (0,)


def htp_config(target: TargetSpec, graph: str) -> dict:
    """HTP backend extension config: the graph's options and the device it is prepared for."""
    soc = SOCS[target.soc]
    g = {"graph_names": [graph], "vtcm_mb": 0, "O": 3}
    if target.precision == "fp16":
        g["fp16_relaxed_precision"] = 1
    return {"graphs": [g], "devices": [{"dsp_arch": f"v{soc.htp_arch}", "soc_id": soc.soc_model}]}


def calibration_list(calib: list[dict[str, np.ndarray]], io: Q.GraphIO, folder: Path) -> Path:
    """The quantizer's calibration list: net-run input_list format, no output-names line."""
    if not calib:
        raise StageFailed(tool_failure("compile", "qairt-quantizer", "no calibration samples to quantize with", "",
                                       kind=FailureKind.BAD_INPUT))
    return Q.write_inputs(calib, io, folder)


@register("qairt-sdk")
class QairtSdkBackend:
    name = "qairt-sdk"

    def __init__(self, sdk: Sdk | None = None):
        self._sdk = sdk

    # ── discovery ──────────────────────────────────────────────────────────────────────────────
    @property
    def sdk(self) -> Sdk:
        if self._sdk is None:
            self._sdk, looked = find_sdk()
            if self._sdk is None:
                raise BadInput(self._missing(looked), where="target.engine")
        return self._sdk

    @staticmethod
    def _missing(looked: list[str]) -> str:
        return f"QAIRT SDK not found: set QAIRT_SDK_ROOT (looked in {'; '.join(looked)})"

    def available(self) -> tuple[bool, str]:
        sdk, looked = (self._sdk, []) if self._sdk else find_sdk()
        if sdk is None:
            return False, self._missing(looked)
        self._sdk = sdk
        have = {t: sdk.bin(t).is_file() for t in QNN_TOOLS + SNPE_TOOLS}
        if not any(have[t] for t in QNN_TOOLS) and not any(have[t] for t in SNPE_TOOLS):
            return False, f"QAIRT SDK at {sdk.root} has none of {', '.join(QNN_TOOLS)} in bin/{sdk.host}"
        missing = [t for t, ok in have.items() if not ok]
        note = f"; missing {', '.join(missing)}" if missing else ""
        return True, f"QAIRT SDK {sdk.version()} at {sdk.root} (bin/{sdk.host}){note}"

    def versions(self) -> dict[str, str]:
        return {"qairt-sdk": self.sdk.version()}

    # ── probe ──────────────────────────────────────────────────────────────────────────────────
    def probe(self, model: Path, target: TargetSpec) -> Placement:
        import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
        tool = "snpe-onnx-to-dlc" if target.runtime == "snpe" else "qairt-converter"
        graph = onnx.load(str(model), load_external_data=False).graph
        total = len(graph.node)
        with tempfile.TemporaryDirectory(prefix="aipc-probe-") as tmp:
            args = ["--input_network", model, "--output_path", Path(tmp) / "probe.dlc", "--dry_run"]
            try:
                log = self.sdk.run(tool, args, stage="compat", cwd=Path(tmp))
            except StageFailed as e:
                log = e.failure.log
                if not e.failure.nodes:  # the converter died without naming what it refused
                    raise
        rejected = _expand_nodes(classify(log).nodes, graph)
        bad = {n.name for n in rejected}
        return Placement(total_nodes=total, backend_nodes=total - len(bad), fallback_nodes=[], rejected=rejected,
                         log=tail(log))

    # ── compile ────────────────────────────────────────────────────────────────────────────────
    def compile(self, req: CompileRequest) -> Compiled:
        req.out_dir.mkdir(parents=True, exist_ok=True)
        io = Q.graph_io(req.float_onnx)
        snpe = req.target.runtime == "snpe"
        for t in io.inputs + io.outputs:
            if any(d <= 0 for d in t.shape):
                raise StageFailed(tool_failure("compile", "qairt-converter", f"{t.name} has a dynamic shape {t.shape}",
                                               "Dynamic tensor is not supported", kind=FailureKind.DYNAMIC_SHAPE))
        io.meta = {"runtime": req.target.runtime, "soc": req.target.soc, "precision": req.target.precision,
                   "model": req.model_name, "sdk": self.sdk.version()}
        logs = req.out_dir / "sdk_logs"
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="aipc-sdk-") as tmp:
            work = Path(tmp)
            entry = self._compile_snpe(req, io, work, logs) if snpe else self._compile_qnn(req, io, work, logs)
        io.save(req.out_dir / Q.IO_FILE)
        files = [entry, req.out_dir / Q.IO_FILE]
        return Compiled(entry=entry, files=files, format="snpe-dlc" if snpe else "qnn-context-binary",
                        prepare_seconds=time.perf_counter() - t0)

    def _overrides(self, req: CompileRequest, work: Path) -> Path | None:
        if req.encodings is None or not Path(req.encodings).is_file():
            return None

        if (aimet := Path(req.encodings).with_name(AIMET_ENCODINGS)).is_file():  # the AIMET engine's own encodings
            return write_sdk_overrides(aimet, req.float_onnx, work / "quantization_overrides.json")
        return Q.write_overrides(Path(req.encodings), req.float_onnx, work / "quantization_overrides.json")

    def _quant_args(self, req: CompileRequest, io: Q.GraphIO, work: Path) -> list:
        lst = calibration_list(req.calibration, io, work / "calibration")
        args = ["--input_list", lst, "--act_bitwidth", ACT_BITS[req.target.precision], "--weights_bitwidth", 8,
                "--bias_bitwidth", 32]
        if req.target.per_channel:  # conv weights per channel, MatMul / FullyConnected weights per row
            args += ["--use_per_channel_quantization", "--use_per_row_quantization"]
        return args

    def _compile_qnn(self, req: CompileRequest, io: Q.GraphIO, work: Path, logs: Path) -> Path:
        sdk, float_dlc = self.sdk, work / "model.dlc"
        overrides = self._overrides(req, work)
        conv = ["--input_network", req.float_onnx, "--output_path", float_dlc, "--preserve_onnx_output_order"]
        if req.target.precision == "fp16":
            conv += ["--float_bitwidth", 16]
        sdk.run("qairt-converter", conv, stage="compile", cwd=work, expect=(float_dlc,), logs=logs)
        dlc = float_dlc
        if req.target.precision in ACT_BITS:
            dlc = work / "model_quantized.dlc"
            method = CALIBRATION.get(req.calibration_method or "minmax", "min-max")
            q = ["--input_dlc", float_dlc, "--output_dlc", dlc, *self._quant_args(req, io, work),
                 "--act_quantizer_calibration", method, "--param_quantizer_calibration", "min-max"]
            if overrides is not None:
                q += ["--quantization_overrides", overrides]
            sdk.run("qairt-quantizer", q, stage="compile", cwd=work, expect=(dlc,), logs=logs)
        graph = dlc.stem
        (work / "htp_config.json").write_text(json.dumps(htp_config(req.target, graph), indent=2))
        (work / "context_config.json").write_text(json.dumps({"backend_extensions": {
            "shared_library_path": str(sdk.lib("libQnnHtpNetRunExtensions.so")),
            "config_file_path": str(work / "htp_config.json")}}, indent=2))
        shutil.copyfile(work / "htp_config.json", req.out_dir / "htp_config.json")
        entry = req.out_dir / "model.bin"
        sdk.run("qnn-context-binary-generator",
                ["--backend", sdk.lib("libQnnHtp.so"), "--model", sdk.lib("libQnnModelDlc.so"), "--dlc_path", dlc,
                 "--binary_file", entry.stem, "--output_dir", req.out_dir, "--config_file", work / "context_config.json"],
                stage="compile", cwd=work, expect=(entry,), logs=logs)
        return entry

    def _compile_snpe(self, req: CompileRequest, io: Q.GraphIO, work: Path, logs: Path) -> Path:
        sdk, float_dlc = self.sdk, work / "model.dlc"
        overrides = self._overrides(req, work)
        conv = ["--input_network", req.float_onnx, "--output_path", float_dlc, "--preserve_io", "layout"]
        if overrides is not None:
            conv += ["--quantization_overrides", overrides]
        sdk.run("snpe-onnx-to-dlc", conv, stage="compile", cwd=work, expect=(float_dlc,), logs=logs)
        dlc = float_dlc
        if req.target.precision in ACT_BITS:
            dlc = work / "model_quantized.dlc"
            q = ["--input_dlc", float_dlc, "--output_dlc", dlc, *self._quant_args(req, io, work)]
            if overrides is not None:
                q.append("--override_params")
            sdk.run("snpe-dlc-quant", q, stage="compile", cwd=work, expect=(dlc,), logs=logs)
        entry = req.out_dir / "model_htp.dlc"
        sdk.run("snpe-dlc-graph-prepare", ["--input_dlc", dlc, "--output_dlc", entry, "--htp_socs", req.target.soc.lower()],
                stage="compile", cwd=work, expect=(entry,), logs=logs)
        return entry

    # ── run ────────────────────────────────────────────────────────────────────────────────────
    def run(self, compiled: Compiled, feeds: list[dict[str, np.ndarray]], target: TargetSpec) -> RunResult:
        io = load_io(compiled)
        with tempfile.TemporaryDirectory(prefix="aipc-run-") as tmp:
            work, out = Path(tmp), Path(tmp) / "output"
            lst = Q.write_inputs(feeds, io, work / "inputs")
            t0 = time.perf_counter()
            if target.runtime == "snpe":
                tool = "snpe-net-run"
                log = self.sdk.run(tool, ["--container", compiled.entry, "--input_list", lst, "--output_dir", out,
                                          "--use_dsp", "--profiling_level", "basic"], stage="validate", cwd=work)
            else:
                tool = "qnn-net-run"
                log = self.sdk.run(tool, ["--retrieve_context", compiled.entry, "--backend", self.sdk.lib("libQnnHtp.so"),
                                          "--input_list", lst, "--output_dir", out, "--profiling_level", "basic"],
                                   stage="validate", cwd=work)
            wall = time.perf_counter() - t0
            outs = Q.read_outputs(out, io, len(feeds), tool=tool, log=log)
            secs = Q.per_inference_seconds(self.profile_us(out, work, target.runtime), len(feeds), wall)
        return RunResult(outs, secs)

    def profile_us(self, out: Path, work: Path, runtime: str) -> list[float]:
        """Execute times (µs) from the profiling log net-run left in `out`; [] when there is none."""
        try:
            if runtime == "snpe":
                log = out / "SNPEDiag.log"
                if not log.is_file():
                    return []
                return Q.execute_us_from_text(self.sdk.run("snpe-diagview", ["--input_log", log], stage="validate",
                                                           cwd=work))
            logs = sorted(out.glob("qnn-profiling-data*.log"))
            if not logs:
                return []
            us: list[float] = []
            for i, log in enumerate(logs):
                csv_path = work / f"profile_{i}.csv"
                text = self.sdk.run("qnn-profile-viewer", ["--input_log", log, "--output", csv_path],
                                    stage="validate", cwd=work)
                us += Q.execute_us_from_csv(csv_path) if csv_path.is_file() else Q.execute_us_from_text(text)
            return us
        except StageFailed:
            return []  # latency falls back to wall time; the outputs are what validation judges


def load_io(compiled: Compiled) -> Q.GraphIO:
    path = next((p for p in compiled.files if p.name == Q.IO_FILE), compiled.entry.parent / Q.IO_FILE)
    if not path.is_file():
        raise StageFailed(tool_failure("validate", "qairt-sdk", f"no {Q.IO_FILE} beside {compiled.entry.name}: "
                                       "compile this model again with the qairt-sdk backend", "",
                                       kind=FailureKind.INTERFACE_MISMATCH))
    return Q.GraphIO.load(path)


def _expand_nodes(nodes: list[RejectedNode], graph) -> list[RejectedNode]:
    """Name the graph's nodes behind a refusal that gave only an op type."""
    by_name = {n.name: n for n in graph.node if n.name}
    out: dict[str, RejectedNode] = {}
    for r in nodes:
        if r.name in by_name:
            out[r.name] = RejectedNode(r.name, by_name[r.name].op_type, r.reason)
            continue
        matches = [n for n in graph.node if n.op_type.lower() == r.op.lower()]
        for i, n in enumerate(matches):
            name = n.name or f"{n.op_type}_{i}"
            out.setdefault(name, RejectedNode(name, n.op_type, r.reason))
        if not matches:
            out.setdefault(r.name, r)
    return list(out.values())


__all__ = ["QairtSdkBackend", "Sdk", "find_sdk", "htp_config", "load_io"]
