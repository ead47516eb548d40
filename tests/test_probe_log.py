"""Reading the QNN EP's own validation log: the refused op, its node and the EP's reason."""

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
