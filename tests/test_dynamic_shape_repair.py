"""A graph that declares a symbolic output dimension: classified as dynamic, pinned by `static-shapes`."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from bot import backends
from bot.records import FailureKind
from bot.repair.loop import RepairLoop
from bot.repair.state import RepairState
from bot.spec import load_spec


def _model_with_symbolic_output(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 4, 4])  # as exporters write it
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_a_symbolic_output_dimension_is_pinned_by_the_optimize_stage(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    _model_with_symbolic_output(folder / "model.onnx")
    (folder / "aipc.yaml").write_text("name: dyn\nonnx: model.onnx\ninputs:\n  - {name: x, shape: [1, 3, 4, 4]}\n")
    spec, folder = load_spec(folder)
    loop = RepairLoop(spec, folder, tmp_path / "o", backends.for_target(spec.target),
                      workflow=["load", "export", "optimize"])
    outcome = loop.run_state(RepairState())
    assert outcome.result("export").metrics["dynamic_dims"] == ["y[0]=batch"]
    assert outcome.passed and outcome.result("optimize").checks[0].passed
    fixed = onnx.load(str(outcome.dirs["optimize"] / "model.onnx"))
    assert [d.dim_value for d in fixed.graph.output[0].type.tensor_type.shape.dim] == [1, 3, 4, 4]


def test_what_shape_inference_cannot_pin_goes_to_static_shapes(tmp_path):
    from bot.records import Failure
    from tests.conftest import write_model

    spec, folder = load_spec(write_model(tmp_path / "m"))
    loop = RepairLoop(spec, folder, tmp_path / "o", backends.for_target(spec.target))
    dyn = Failure("optimize", FailureKind.DYNAMIC_SHAPE, "dynamic dimensions remain: ['y[1]=n']")
    plan = loop.plan(dyn, RepairState(), best=None)
    assert plan[0][0].id == "static-shapes" and plan[0][1].options == {"optimize": {"static_shapes": True}}
