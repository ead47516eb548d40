"""Each graph rule on a tiny graph: it fires, ONNX Runtime CPU numerics are unchanged, and where
this QNN EP (onnxruntime-qnn 2.7, HTP) refuses the original, the rewrite is fully placed."""

from __future__ import annotations

import io
import math

import numpy as np
import onnx
import pytest

from bot.repair.graph import all_rules, apply_rewrites

from ._helpers import F, I64, const, h, model, ops, probe, quantize_qdq, run_cpu, same_numerics

RNG = np.random.default_rng(0)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def rewritten(m, rid):
    out, counts = apply_rewrites(m, [rid])
    return out, counts[rid]


def assert_rejected_then_full(before, after, tmp_path, op=None):
    p0, p1 = probe(before, tmp_path), probe(after, tmp_path)
    assert not p0.full, "the original was expected to be refused by the HTP"
    if op is not None:
        assert any(r.op == op for r in p0.rejected) or p0.fallback_nodes
    assert p1.full, [(r.op, r.reason) for r in p1.rejected] + p1.fallback_nodes
    return p0, p1


def test_catalogue_has_the_agreed_ids():
    ids = set(all_rules())
    assert {"resize-to-htp", "einsum-to-matmul", "int64-to-int32", "rank5-to-rank4", "mod-floor-rewrite",
            "scatternd-to-slice-concat", "gelu-form", "layernorm-form", "strip-postprocess"} <= ids
    for rule in all_rules().values():
        assert rule.summary and (rule.ops or rule.output_ops) and callable(rule.rewrite)


# --- resize-to-htp -------------------------------------------------------------------------

def _resize(ctm, nm, scales, shape=(1, 4, 8, 8)):
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             h.make_node("Resize", ["c", "", "sc"], ["y"], mode="nearest", coordinate_transformation_mode=ctm,
                         nearest_mode=nm)]
    return model(nodes, [("x", F, list(shape))], [("y", F)],
                 [const("w", rand(4, 4, 3, 3, scale=0.1)), const("sc", np.array(scales, np.float32))])


@pytest.mark.htp
def test_resize_asymmetric_round_prefer_floor_becomes_floor(tmp_path):
    m = _resize("asymmetric", "round_prefer_floor", [1, 1, 2, 2])
    out, n = rewritten(m, "resize-to-htp")
    assert n == 1 and ops(out) == ["Conv", "Resize"]
    r = next(x for x in out.graph.node if x.op_type == "Resize")
    assert {a.name: h.get_attribute_value(a) for a in r.attribute}["nearest_mode"] == b"floor"
    assert same_numerics(m, out, {"x": rand(1, 4, 8, 8)}, atol=0)
    p0, _ = assert_rejected_then_full(m, out, tmp_path, "Resize")
    assert "asymmetric" in next(r.reason for r in p0.rejected if r.op == "Resize")


@pytest.mark.htp
def test_resize_without_an_equal_form_becomes_gathers(tmp_path):
    m = _resize("asymmetric", "round_prefer_floor", [1, 1, 3, 3])  # ×3: no accepted Resize reads the same pixels
    out, n = rewritten(m, "resize-to-htp")
    assert n == 1 and ops(out) == ["Conv", "Gather", "Gather"]
    assert same_numerics(m, out, {"x": rand(1, 4, 8, 8)}, atol=0)
    assert_rejected_then_full(m, out, tmp_path, "Resize")


@pytest.mark.htp
def test_resize_qdq_form_rejected_then_placed(tmp_path):
    m = _resize("asymmetric", "round_prefer_floor", [1, 1, 2, 2])
    out, _ = rewritten(m, "resize-to-htp")
    feeds = [{"x": rand(1, 4, 8, 8)} for _ in range(4)]
    assert_rejected_then_full(quantize_qdq(m, feeds, tmp_path), quantize_qdq(out, feeds, tmp_path), tmp_path)


def test_resize_leaves_torch_upsample_alone():
    """nn.Upsample(scale_factor=2, 'nearest') exports asymmetric+floor, which the HTP accepts."""
    import torch

    class Up(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up = torch.nn.Upsample(scale_factor=2, mode="nearest")

        def forward(self, x):
            return torch.cat([self.up(x), torch.zeros(1, 2, 8, 8)], 1)

    buf = io.BytesIO()
    torch.onnx.export(Up().eval(), (torch.rand(1, 2, 4, 4),), buf, opset_version=17, dynamo=False)
    m = onnx.load_from_string(buf.getvalue())
    assert "Resize" in ops(m)
    assert rewritten(m, "resize-to-htp")[1] == 0


# --- einsum-to-matmul ----------------------------------------------------------------------

@pytest.mark.htp
@pytest.mark.parametrize("eq,sa,sb", [("bchw,bchw->bc", [1, 4, 8, 8], [1, 4, 8, 8]),
                                      ("bchw,bkc->bkhw", [1, 4, 8, 8], [1, 3, 4])])
def test_einsum_rejected_equations_become_matmul(tmp_path, eq, sa, sb):
    m = model([h.make_node("Einsum", ["a", "b"], ["y"], equation=eq)], [("a", F, sa), ("b", F, sb)], [("y", F)])
    out, n = rewritten(m, "einsum-to-matmul")
    assert n == 1 and "Einsum" not in ops(out) and "MatMul" in ops(out)
    assert same_numerics(m, out, {"a": rand(*sa), "b": rand(*sb)})
    p0, _ = assert_rejected_then_full(m, out, tmp_path, "Einsum")
    assert "Einsum unsupported equation" in p0.rejected[0].reason


@pytest.mark.parametrize("eq,sa,sb", [("bhid,bhjd->bhij", [1, 2, 8, 16], [1, 2, 8, 16]),
                                      ("bhij,bhjd->bhid", [1, 2, 8, 8], [1, 2, 8, 16]),
                                      ("i,j->ij", [3], [4])])
def test_einsum_attention_forms(eq, sa, sb):
    m = model([h.make_node("Einsum", ["a", "b"], ["y"], equation=eq)], [("a", F, sa), ("b", F, sb)], [("y", F)])
    out, n = rewritten(m, "einsum-to-matmul")
    assert n == 1 and "Einsum" not in ops(out)
    assert same_numerics(m, out, {"a": rand(*sa), "b": rand(*sb)})


def test_einsum_leaves_unsupported_forms():
    m = model([h.make_node("Einsum", ["a"], ["y"], equation="ii->i")], [("a", F, [3, 3])], [("y", F)])
    assert rewritten(m, "einsum-to-matmul")[1] == 0


# --- int64-to-int32 (this EP places int64; test a + b) ------------------------------------

def test_int64_indices_and_index_casts_become_int32():
    m = model([h.make_node("Gather", ["x", "ix"], ["g"], axis=1), h.make_node("Cast", ["p"], ["pi"], to=I64),
               h.make_node("GatherElements", ["g", "pi"], ["y"], axis=1)],
              [("x", F, [1, 8, 4]), ("p", F, [1, 3, 4])], [("y", F)], [const("ix", np.array([0, -1, 5], np.int64))])
    out, n = rewritten(m, "int64-to-int32")
    assert n == 2
    assert not any(t.data_type == onnx.TensorProto.INT64 for t in out.graph.initializer)
    assert [a.i for x in out.graph.node if x.op_type == "Cast" for a in x.attribute] == [onnx.TensorProto.INT32]
    feeds = {"x": rand(1, 8, 4), "p": RNG.integers(0, 3, (1, 3, 4)).astype(np.float32)}
    assert same_numerics(m, out, feeds, atol=0)


def test_int64_shape_inputs_untouched():
    m = model([h.make_node("Reshape", ["x", "s"], ["y"])], [("x", F, [2, 6])], [("y", F)],
              [const("s", np.array([3, 4], np.int64))])
    assert rewritten(m, "int64-to-int32")[1] == 0


# --- rank5-to-rank4 ------------------------------------------------------------------------

def _chain(xs, s1, perm, s2):
    return model([h.make_node("Reshape", ["x", "s1"], ["a"]), h.make_node("Transpose", ["a"], ["b"], perm=perm),
                  h.make_node("Reshape", ["b", "s2"], ["y"])], [("x", F, xs)], [("y", F)],
                 [const("s1", np.array(s1, np.int64)), const("s2", np.array(s2, np.int64))])


def _max_rank(m):
    m = onnx.shape_inference.infer_shapes(m)
    return max(len(v.type.tensor_type.shape.dim) for v in m.graph.value_info)


@pytest.mark.htp
def test_rank6_space_to_depth_chain_folded_and_placed(tmp_path):
    m = _chain([1, 4, 8, 8], [1, 4, 4, 2, 4, 2], [0, 1, 3, 5, 2, 4], [1, 16, 4, 4])
    out, n = rewritten(m, "rank5-to-rank4")
    assert n == 1 and _max_rank(out) == 5
    assert same_numerics(m, out, {"x": rand(1, 4, 8, 8)}, atol=0)
    p0, _ = assert_rejected_then_full(m, out, tmp_path, "Reshape")
    assert any("Failed to add node" in r.reason for r in p0.rejected)


def test_channel_shuffle_folded_to_rank3():
    m = _chain([1, 8, 6, 6], [1, 2, 4, 6, 6], [0, 2, 1, 3, 4], [1, 8, 6, 6])
    out, n = rewritten(m, "rank5-to-rank4")
    assert n == 1 and _max_rank(out) == 3
    assert same_numerics(m, out, {"x": rand(1, 8, 6, 6)}, atol=0)


# --- mod-floor-rewrite ---------------------------------------------------------------------

@pytest.mark.htp
def test_float_fmod_rewritten_and_placed(tmp_path):
    m = model([h.make_node("Mod", ["x", "c"], ["y"], fmod=1)], [("x", F, [1, 64])], [("y", F)],
              [const("c", np.array([0.75], np.float32))])
    out, n = rewritten(m, "mod-floor-rewrite")
    assert n == 1 and "Mod" not in ops(out)
    assert same_numerics(m, out, {"x": rand(1, 64, scale=5)}, atol=1e-5)
    p0, _ = assert_rejected_then_full(m, out, tmp_path, "Mod")
    assert "fmod" in p0.rejected[0].reason


def test_integer_mod_left_alone():
    m = model([h.make_node("Mod", ["x", "c"], ["y"])], [("x", onnx.TensorProto.INT32, [1, 8])],
              [("y", onnx.TensorProto.INT32)], [const("c", np.array([3], np.int32))])
    assert rewritten(m, "mod-floor-rewrite")[1] == 0


# --- scatternd-to-slice-concat (this EP places ScatterND; test a + b) ---------------------

def test_scatternd_slice_assignment_from_torch():
    import torch

    class Assign(torch.nn.Module):
        def forward(self, x, u):
            x = x.clone()
            x[:, 2:5] = u
            return x * 2

    buf = io.BytesIO()
    torch.onnx.export(Assign(), (torch.rand(1, 8, 4), torch.rand(1, 3, 4)), buf, opset_version=17, dynamo=False,
                      input_names=["x", "u"])
    import onnxslim

    m = onnxslim.slim(onnx.load_from_string(buf.getvalue()))
    assert "ScatterND" in ops(m)
    out, n = rewritten(m, "scatternd-to-slice-concat")
    assert n == 1 and "ScatterND" not in ops(out) and "Concat" in ops(out)
    assert same_numerics(m, out, {"x": rand(1, 8, 4), "u": rand(1, 3, 4)}, atol=0)


def test_scatternd_non_box_left_alone():
    m = model([h.make_node("ScatterND", ["x", "ix", "u"], ["y"])], [("x", F, [1, 8, 4]), ("u", F, [1, 2, 4])],
              [("y", F)], [const("ix", np.array([[[0, 3], [0, 2]]], np.int64))])  # reversed order
    assert rewritten(m, "scatternd-to-slice-concat")[1] == 0


# --- gelu-form -----------------------------------------------------------------------------

def _gelu(variant, opset=17):
    k = math.sqrt(2) if variant in "AC" else 1 / math.sqrt(2)
    arg = h.make_node("Div" if variant in "AC" else "Mul", ["x1", "k"], ["a"])
    tail = {"A": [h.make_node("Mul", ["x1", "c"], ["d"]), h.make_node("Mul", ["d", "half"], ["y"])],
            "B": [h.make_node("Mul", ["c", "half"], ["d"]), h.make_node("Mul", ["x1", "d"], ["y"])],
            "C": [h.make_node("Mul", ["half", "x1"], ["d"]), h.make_node("Mul", ["d", "c"], ["y"])]}[variant]
    nodes = [h.make_node("MatMul", ["x", "w"], ["x1"]), arg, h.make_node("Erf", ["a"], ["b"]),
             h.make_node("Add", ["one", "b"], ["c"]), *tail]
    return model(nodes, [("x", F, [1, 8, 16])], [("y", F)],
                 [const("w", rand(16, 16, scale=0.3)), const("k", np.array(k, np.float32)),
                  const("one", np.array(1.0, np.float32)), const("half", np.array(0.5, np.float32))], opset=opset)


@pytest.mark.parametrize("variant,opset", [("A", 17), ("B", 17), ("C", 17), ("A", 20)])
def test_gelu_variants_become_one_op(variant, opset):
    m = _gelu(variant, opset)
    out, n = rewritten(m, "gelu-form")
    assert n == 1 and ops(out) == ["MatMul", "Gelu"]
    assert (out.graph.node[1].domain == "com.microsoft") == (opset < 20)
    assert same_numerics(m, out, {"x": rand(1, 8, 16)}, atol=1e-5)


@pytest.mark.htp
def test_gelu_qdq_erf_rejected_then_placed(tmp_path):
    m = _gelu("A")
    out, _ = rewritten(m, "gelu-form")
    feeds = [{"x": rand(1, 8, 16)} for _ in range(4)]
    assert probe(m, tmp_path).full  # float: the EP fuses the erf chain itself
    assert_rejected_then_full(quantize_qdq(m, feeds, tmp_path), quantize_qdq(out, feeds, tmp_path), tmp_path)


# --- layernorm-form (this EP places both forms; test a + b) -------------------------------

@pytest.mark.parametrize("opset,square", [(17, "Pow"), (18, "Mul")])
def test_layernorm_chain_becomes_layernormalization(opset, square):
    def mean(i, o):
        return (h.make_node("ReduceMean", [i, "ax"], [o]) if opset >= 18
                else h.make_node("ReduceMean", [i], [o], axes=[-1]))
    sq = h.make_node("Pow", ["d", "two"], ["p"]) if square == "Pow" else h.make_node("Mul", ["d", "d"], ["p"])
    nodes = [mean("x", "m"), h.make_node("Sub", ["x", "m"], ["d"]), sq, mean("p", "v"),
             h.make_node("Add", ["v", "eps"], ["ve"]), h.make_node("Sqrt", ["ve"], ["s"]),
             h.make_node("Div", ["d", "s"], ["n"]), h.make_node("Mul", ["n", "g"], ["ng"]),
             h.make_node("Add", ["ng", "b"], ["y"])]
    inits = [const("eps", np.array(1e-5, np.float32)), const("g", rand(16)), const("b", rand(16))]
    inits += [const("two", np.array(2.0, np.float32))] if square == "Pow" else []
    inits += [const("ax", np.array([-1], np.int64))] if opset >= 18 else []
    m = model(nodes, [("x", F, [1, 8, 16])], [("y", F)], inits, opset=opset)
    out, n = rewritten(m, "layernorm-form")
    assert n == 1 and ops(out) == ["LayerNormalization"]
    assert same_numerics(m, out, {"x": rand(1, 8, 16, scale=3)}, atol=1e-4)


def test_layernorm_over_other_axis_left_alone():
    nodes = [h.make_node("ReduceMean", ["x"], ["m"], axes=[1]), h.make_node("Sub", ["x", "m"], ["d"]),
             h.make_node("Mul", ["d", "d"], ["p"]), h.make_node("ReduceMean", ["p"], ["v"], axes=[1]),
             h.make_node("Add", ["v", "eps"], ["ve"]), h.make_node("Sqrt", ["ve"], ["s"]),
             h.make_node("Div", ["d", "s"], ["n"]), h.make_node("Mul", ["n", "g"], ["ng"]),
             h.make_node("Add", ["ng", "b"], ["y"])]
    m = model(nodes, [("x", F, [1, 16, 16])], [("y", F)],
              [const("eps", np.array(1e-5, np.float32)), const("g", rand(16)), const("b", rand(16))])
    assert rewritten(m, "layernorm-form")[1] == 0


# --- strip-postprocess ---------------------------------------------------------------------

def _detector():
    nodes = [h.make_node("Conv", ["x", "w"], ["f"]), h.make_node("Reshape", ["f", "s"], ["r"]),
             h.make_node("Slice", ["r", "a0", "a4", "ax"], ["boxes"]),
             h.make_node("Slice", ["r", "a4", "a6", "ax"], ["logits"]), h.make_node("Sigmoid", ["logits"], ["prob"]),
             h.make_node("Transpose", ["prob"], ["scores"], perm=[0, 2, 1]),
             h.make_node("NonMaxSuppression", ["boxes", "scores", "mo", "iou", "st"], ["sel"]),
             h.make_node("Gather", ["sel", "col"], ["keep"], axis=1)]
    inits = [const("w", rand(6, 3, 1, 1)), const("s", np.array([1, 16, 6], np.int64)),
             const("a0", np.array([0], np.int64)), const("a4", np.array([4], np.int64)),
             const("a6", np.array([6], np.int64)), const("ax", np.array([2], np.int64)),
             const("mo", np.array([5], np.int64)), const("iou", np.array([0.5], np.float32)),
             const("st", np.array([0.2], np.float32)), const("col", np.array(2, np.int64))]
    return model(nodes, [("x", F, [1, 3, 4, 4])], [("keep", I64), ("prob", F)], inits)


@pytest.mark.htp
def test_nms_cut_to_host_and_rest_placed(tmp_path):
    from bot.repair.graph.strip_postprocess import KEY, host_postprocess, run_host_postprocess

    m = _detector()
    out, n = rewritten(m, "strip-postprocess")
    assert n == 1 and "NonMaxSuppression" not in ops(out) and "Gather" not in ops(out)
    assert [o.name for o in out.graph.output] == ["prob", "boxes", "scores"]
    desc = host_postprocess(out)
    assert KEY in {p.key for p in out.metadata_props}
    part = desc["parts"][0]
    assert part["ops"] == ["NonMaxSuppression", "Gather"] and [i["name"] for i in part["inputs"]] == ["boxes", "scores"]
    assert desc["final_outputs"] == ["keep", "prob"]
    feeds = {"x": rand(1, 3, 4, 4)}
    ref = run_cpu(m, feeds)
    deployed = dict(zip([o.name for o in out.graph.output], run_cpu(out, feeds)))
    assert np.array_equal(run_host_postprocess(desc, deployed)["keep"], ref[0])
    assert np.allclose(deployed["prob"], ref[1])
    p0, _ = assert_rejected_then_full(m, out, tmp_path, "NonMaxSuppression")


def test_big_region_after_argmax_kept():
    nodes = [h.make_node("ArgMax", ["x"], ["a"], axis=1, keepdims=1), h.make_node("Cast", ["a"], ["c0"], to=F)]
    for i in range(30):
        nodes.append(h.make_node("Relu", [f"c{i}"], [f"c{i + 1}"]))
    m = model(nodes, [("x", F, [1, 8, 4])], [("c30", F)])
    assert rewritten(m, "strip-postprocess")[1] == 0


def test_all_rules_in_sequence_keep_metadata_and_numerics():
    """The loop may stack rules: each is a no-op where it has nothing to do, and the cut description survives."""
    from bot.repair.graph.strip_postprocess import KEY

    m = _detector()
    ids = ["strip-postprocess"] + sorted(set(all_rules()) - {"strip-postprocess"})
    out, counts = apply_rewrites(m, ids)
    assert counts["strip-postprocess"] == 1 and sum(counts.values()) == 1
    assert KEY in {p.key for p in out.metadata_props}
    onnx.checker.check_model(out, full_check=True)
