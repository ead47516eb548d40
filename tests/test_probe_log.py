"""Reading the QNN EP's own validation log: the refused op, its node and the EP's reason."""

import pytest

from bot.backends.ort_qnn import parse_probe_log

# Shapes of the EP's verbose log as onnxruntime-qnn 2.7 writes it (float unit, QDQ unit, placements)
LOG = """2026 [V:onnxruntime:, qnn_execution_provider.cc:1713 LogNodeSupport] Validation PASSED for 1 nodes in OrtNodeUnit (Conv) :
\tOperator type: Conv Node name: /c1/Conv Node index: 0

2026 [V:onnxruntime:, qnn_execution_provider.cc:1713 LogNodeSupport] Validation FAILED for 3 nodes in OrtNodeUnit (Resize) :
\tOperator type: DequantizeLinear Node name: up_dq Node index: 3
\tOperator type: Resize Node name: /up/Resize Node index: 4
\tOperator type: QuantizeLinear Node name: up_q Node index: 5
\tREASON : Only 'floor' is supported.

2026 [V:onnxruntime:, qnn_execution_provider.cc:1713 LogNodeSupport] Validation FAILED for 1 nodes in OrtNodeUnit (Einsum) :
\tOperator type: Einsum Node name: /Einsum Node index: 7
\tREASON : Einsum unsupported equation: bchw,bchw->bc

2026 [V:onnxruntime:, qnn_execution_provider.cc:1713 LogNodeSupport] Validation FAILED for 1 nodes in OrtNodeUnit (QuantizeLinear) :
\tOperator type: QuantizeLinear Node name: x_QuantizeLinear Node index: 0
\tREASON : QNN EP is configured to not take Q nodes that consume a graph input.

2026 [V:onnxruntime:, session_state.cc:1598 VerifyEachNodeIsAssignedToAnEp] Node placements
2026 [V:onnxruntime:, session_state.cc:1604 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [QNNExecutionProvider]. Number of nodes: 1
2026 [V:onnxruntime:, session_state.cc:1606 VerifyEachNodeIsAssignedToAnEp]   QNNExecutionProvider_1 (QNNExecutionProvider_QNN_1_0)
2026 [V:onnxruntime:, session_state.cc:1604 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 3
2026 [V:onnxruntime:, session_state.cc:1606 VerifyEachNodeIsAssignedToAnEp]   Einsum (/Einsum)
2026 [V:onnxruntime:, session_state.cc:1606 VerifyEachNodeIsAssignedToAnEp]   Resize (/up/Resize)
2026 [V:onnxruntime:, session_state.cc:1606 VerifyEachNodeIsAssignedToAnEp]   QuantizeLinear (x_QuantizeLinear)
2026 [W:onnxruntime:, session_state.cc:1618 VerifyEachNodeIsAssignedToAnEp] Some nodes were not assigned
"""


def test_qdq_unit_is_reported_under_its_op_with_the_reason():
    rejected, fallback = parse_probe_log(LOG)
    by_name = {n.name: n for n in rejected}
    assert by_name["/up/Resize"].op == "Resize" and by_name["/up/Resize"].reason == "Only 'floor' is supported."
    assert by_name["/Einsum"].reason.startswith("Einsum unsupported equation")


def test_io_quantization_left_to_the_host_is_not_a_rejection():
    rejected, fallback = parse_probe_log(LOG)
    assert "x_QuantizeLinear" not in {n.name for n in rejected}
    assert fallback == ["/Einsum", "/up/Resize"]


def _tiny_conv(path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.htp
def test_the_probe_prepares_its_throwaway_graph_at_the_fastest_finalization(tmp_path):
    """The probe's graph is discarded, so it asks the HTP for the quickest preparation (mode 1); the EP's
    own log must say so, and the placement it reads must still be complete."""
    import subprocess
    import sys

    from bot.backends.ort_qnn import PROBE_FINALIZATION, OrtQnnBackend, probe_command
    from bot.spec.schema import TargetSpec

    model = _tiny_conv(tmp_path / "conv.onnx")
    proc = subprocess.run(probe_command(model, TargetSpec(soc="SM8650")), capture_output=True, text=True, timeout=300)
    log = proc.stderr + proc.stdout
    assert proc.returncode == 0, log[-2000:]
    assert f"HTP graph finalization optimization mode: {PROBE_FINALIZATION}" in log
    assert PROBE_FINALIZATION == "1"
    placement = OrtQnnBackend().probe(model, TargetSpec(soc="SM8650"))
    assert placement.full and placement.total_nodes == 1 and not placement.rejected


@pytest.mark.htp
def test_the_probe_child_loads_onnxruntime_only(tmp_path):
    """The child is started for every compat run: it must not pay for the bot's package (pydantic, the
    schema, every backend), only for onnxruntime — and still print the EP's placement log."""
    import json
    import subprocess
    import sys

    from bot.backends.ort_qnn import probe_command
    from bot.spec.schema import TargetSpec

    model = _tiny_conv(tmp_path / "conv.onnx")
    cmd = probe_command(model, TargetSpec(soc="SM8650"))
    script, args = cmd[1], cmd[2:]
    show = ("import json, runpy, sys; sys.argv = [sys.argv[1], *sys.argv[2:]]\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", show, script, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Node placements" in proc.stderr + proc.stdout
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "onnxruntime" in loaded
    heavy = [m for m in loaded if m.split(".")[0] in ("bot", "pydantic", "typer", "rich", "torch", "onnx")]
    assert heavy == []
