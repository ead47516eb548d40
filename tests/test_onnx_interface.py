"""`onnx:` entries whose interface the file states badly: output names matched to the graph's
(in the graph's order, refused at load when they are not the graph's), and wrong declared output
shapes replaced by the shapes the model produces, before they become the compiled binary's."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from bot import backends
from bot import samples as S
from bot.repair.loop import RepairLoop
from bot.repair.state import RepairState
from bot.spec import load_spec
from tests.test_cli import _assert_bad_input, aipc


def _two_outputs(path, declared_contour=(1, 4, 6, 6)):
    """Like basic-pitch's nmp.onnx: the outputs' names do not sort in output order. 'contour'
    (a 3×3 conv: [1, 4, 6, 6] on the definition's 8×8) may be declared with a wrong static shape,
    which the checker cannot see against the file's dynamic H×W; 'a_note' is a Sigmoid of x."""
    rng = np.random.default_rng(0)
    g = h.make_graph([h.make_node("Conv", ["x", "w"], ["contour"]), h.make_node("Sigmoid", ["x"], ["a_note"])], "g",
                     [h.make_tensor_value_info("x", T.FLOAT, [1, 3, "H", "W"])],
                     [h.make_tensor_value_info("contour", T.FLOAT, list(declared_contour)),
                      h.make_tensor_value_info("a_note", T.FLOAT, [1, 3, "H", "W"])],
                     [nh.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32), "w")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.save(m, str(path))


def _folder(tmp_path, outputs=None, declared_contour=(1, 4, 6, 6)):
    folder = tmp_path / "m"
    folder.mkdir()
    _two_outputs(folder / "model.onnx", declared_contour)
    text = "name: two\nonnx: model.onnx\ninputs:\n  - {name: x, shape: [1, 3, 8, 8], range: [-1, 1]}\n"
    if outputs is not None:
        text += f"outputs: [{', '.join(outputs)}]\n"
    (folder / "aipc.yaml").write_text(text)
    return folder


def _run(tmp_path, folder, workflow=None):
    spec, folder = load_spec(folder)
    loop = RepairLoop(spec, folder, tmp_path / "o", backends.for_target(spec.target), workflow=workflow)
    return loop.run_state(RepairState())


@pytest.mark.parametrize("outputs", [None, ["a_note", "contour"], ["contour", "a_note"]])
def test_outputs_named_and_ordered_as_the_graph(tmp_path, outputs):
    out = _run(tmp_path, _folder(tmp_path, outputs), ["load"])
    golden = S.load(out.dirs["load"] / "golden.npz")[0]
    sample = S.load(out.dirs["load"] / "samples.npz")[0]
    assert list(golden) == ["contour", "a_note"]  # the graph's order, whatever order `outputs:` used
    assert np.allclose(golden["a_note"], 1 / (1 + np.exp(-sample["x"])), atol=1e-6)  # each name on its own tensor
    assert golden["contour"].shape == (1, 4, 6, 6)


@pytest.mark.parametrize("outputs,needle", [(["note", "contour"], "'note'"), (["contour"], "1 output(s)")])
def test_outputs_not_the_graphs_refused_at_load(tmp_path, outputs, needle):
    proc = aipc("deploy", str(_folder(tmp_path, outputs)), "--out", str(tmp_path / "o"))
    _assert_bad_input(proc, "outputs", needle, "contour, a_note")
    assert not (tmp_path / "o" / "export").exists()


def test_wrong_declared_output_shape_replaced_at_export(tmp_path):
    """Before: with the dynamic H×W resolved, the checker refused the file (6 vs 8) at export."""
    out = _run(tmp_path, _folder(tmp_path, declared_contour=(1, 4, 8, 8)), ["load", "export", "optimize"])
    assert out.passed, out.failure
    fixed = out.result("export").metrics["output_shapes_corrected"]
    assert fixed == {"contour": {"declared": [1, 4, 8, 8], "actual": [1, 4, 6, 6]}}
    m = onnx.load(str(out.dirs["optimize"] / "model.onnx"))
    assert [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim] == [1, 4, 6, 6]


def test_wrong_declared_shape_not_folded_into_the_graph(tmp_path):
    """A Reshape whose target is computed from shapes: onnxslim folds it from the declared output
    shape, so a wrong declaration ([1, 4, 99]) became a Reshape that cannot run (before: ONNX
    Runtime failed inside optimize's CPU check)."""
    folder = tmp_path / "m"
    folder.mkdir()
    nodes = [h.make_node("Conv", ["x", "w"], ["c"]), h.make_node("Shape", ["c"], ["sh"]),
             h.make_node("Slice", ["sh", "s2", "s4"], ["hw"]), h.make_node("ReduceProd", ["hw"], ["n"], keepdims=1),
             h.make_node("Concat", ["head", "n"], ["shape"], axis=0), h.make_node("Reshape", ["c", "shape"], ["y"])]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, "H", "W"])],
                     [h.make_tensor_value_info("y", T.FLOAT, [1, 4, 99])],
                     [nh.from_array(np.full((4, 3, 3, 3), 0.1, np.float32), "w"),
                      nh.from_array(np.array([2], np.int64), "s2"), nh.from_array(np.array([4], np.int64), "s4"),
                      nh.from_array(np.array([1, 4], np.int64), "head")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.save(m, str(folder / "model.onnx"))
    (folder / "aipc.yaml").write_text("name: r\nonnx: model.onnx\ninputs:\n  - {name: x, shape: [1, 3, 8, 8]}\n")
    out = _run(tmp_path, folder, ["load", "export", "optimize"])
    assert out.passed, out.failure
    assert out.result("export").metrics["output_shapes_corrected"]["y"] == {"declared": [1, 4, 99], "actual": [1, 4, 36]}
    m = onnx.load(str(out.dirs["optimize"] / "model.onnx"))
    assert [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim] == [1, 4, 36]


def test_right_declared_shapes_left_alone(tmp_path):
    out = _run(tmp_path, _folder(tmp_path), ["load", "export"])
    assert out.passed and "output_shapes_corrected" not in out.result("export").metrics
    assert out.result("export").metrics["dynamic_dims"] == ["x[2]=H", "x[3]=W", "a_note[2]=H", "a_note[3]=W"]


@pytest.mark.htp
def test_wrong_shape_and_unordered_names_deploy_and_validate(tmp_path):
    """Before: validate failed with an interface mismatch (the golden outputs were named by
    position, 'a_note' holding the conv's tensor). Now the whole pipeline passes on the HTP."""
    out = _run(tmp_path, _folder(tmp_path, ["a_note", "contour"], declared_contour=(1, 4, 8, 8)))
    assert out.passed, out.failure
    assert {c.name: c.passed for c in out.result("validate").checks}["output names and shapes match the golden outputs"]
