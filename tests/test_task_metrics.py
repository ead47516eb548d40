"""Each task metric kind on hand-made answers: agreeing answers pass, a disagreeing deployed answer
fails the bar, labels give FP32 vs deployed and the delta."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import TypeAdapter

from bot.errors import BadInput
from bot.spec.schema import TaskMetric, TaskSpec
from bot.task import check, evaluate
from bot.task.detections import iou, match
from bot.task.ranking import spearman
from bot.task.sequence import edit_distance

METRIC = TypeAdapter(TaskMetric)


def run(metric: dict, fp32: list, deployed: list, labels=None, folder=None):
    task = TaskSpec(metrics=[METRIC.validate_python(metric)])
    (res,) = evaluate(task, fp32, deployed, labels, folder)
    return res


def fig(res, prefix: str):
    return next(f for f in res.figures if f.name.startswith(prefix))


def test_label_agreement_fails_below_its_bar_and_names_the_sample():
    ok = run({"kind": "label", "min": 0.99}, [1, 2, 3, 4], [1, 2, 3, 4])
    assert ok.passed and fig(ok, "agreement").deployed == 1.0
    bad = run({"kind": "label", "min": 0.99}, [1, 2, 3, 4], [1, 2, 0, 4])
    assert not bad.passed and fig(bad, "agreement").deployed == 0.75 and bad.disagree == [2]


def test_label_accuracy_vs_labels_reports_fp32_deployed_and_the_drop():
    res = run({"kind": "label", "min": 0.5, "label_drop_max": 0.1}, ["a", "b", "c", "d"], ["a", "b", "x", "d"],
              labels=["a", "b", "c", "x"])
    acc = fig(res, "accuracy vs labels")
    assert acc.fp32 == 0.75 and acc.deployed == 0.5 and acc.delta == -0.25
    assert acc.passed is False and not res.passed  # a drop of 0.25 exceeds 0.1
    assert fig(res, "agreement").passed  # 0.75 >= 0.5


def test_topk_fp32_top1_within_deployed_topk():
    f = [np.array([[0.1, 0.9, 0.0]]), np.array([[0.8, 0.1, 0.1]])]
    near = [np.array([[0.5, 0.4, 0.1]]), np.array([[0.7, 0.2, 0.1]])]  # sample 0: FP32's 1 is 2nd
    assert run({"kind": "topk", "k": 2, "min": 1.0}, f, near).passed
    res = run({"kind": "topk", "k": 1, "min": 1.0}, f, near)
    assert not res.passed and res.disagree == [0]
    assert fig(res, "top-1 agreement").deployed == 0.5
    lab = run({"kind": "topk", "k": 2, "min": 0.5}, f, near, labels=[1, 2])
    t1 = fig(lab, "top-1 accuracy")
    assert t1.fp32 == 0.5 and t1.deployed == 0.0


def test_sequence_exact_match_and_error_rate():
    assert edit_distance("kitten", "sitting") == 3 and edit_distance([1, 2], [1, 2]) == 0
    ok = run({"kind": "sequence", "min": 1.0}, ["AB12CD", "XY9"], ["AB12CD", "XY9"])
    assert ok.passed and fig(ok, "error rate").deployed == 0.0
    bad = run({"kind": "sequence", "min": 1.0, "cer_max": 0.05}, ["AB12CD", "XY9"], ["AB12CO", "XY9"])
    assert not bad.passed and bad.disagree == [0]
    assert fig(bad, "error rate").deployed == pytest.approx(1 / 9) and fig(bad, "error rate").passed is False


def _det(box, score=0.9, label=0):
    return {"box": box, "score": score, "label": label}


def test_detections_match_at_iou_recall_precision_and_score_change():
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0 and iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    fp32 = [[_det([0, 0, 10, 10]), _det([20, 20, 40, 40], 0.8, 1)]]
    same = [[_det([1, 0, 10, 10], 0.85), _det([20, 21, 40, 40], 0.8, 1)]]
    res = run({"kind": "detections", "iou": 0.5, "recall_min": 0.95, "precision_min": 0.95}, fp32, same)
    assert res.passed and fig(res, "recall").deployed == 1.0
    assert fig(res, "mean |score change|").deployed == pytest.approx(0.025)
    # a box lost and one moved off (IoU < 0.5): recall 0, an extra box: precision falls too
    moved = [[_det([6, 6, 16, 16]), _det([100, 100, 110, 110], 0.5, 1)]]
    bad = run({"kind": "detections", "iou": 0.5, "recall_min": 0.95, "precision_min": 0.95}, fp32, moved)
    assert not bad.passed and fig(bad, "recall").deployed == 0.0 and fig(bad, "precision").deployed == 0.0
    # the same box with another label is not a match when labels must agree
    relabelled = [[_det([0, 0, 10, 10], label=5), _det([20, 20, 40, 40], 0.8, 1)]]
    assert fig(run({"kind": "detections"}, fp32, relabelled), "recall").deployed == 0.5
    assert match(fp32[0], relabelled[0], 0.5, same_label=False) == [(0, 0), (1, 1)]


def test_decisions_per_frame_agreement():
    f = [np.array([0.1, 0.7, 0.9, 0.2]), np.array([0.6, 0.6])]
    assert run({"kind": "decisions", "threshold": 0.5, "min": 1.0}, f, [np.array([0.2, 0.8, 0.95, 0.1]),
                                                                       np.array([0.55, 0.9])]).passed
    bad = run({"kind": "decisions", "threshold": 0.5, "min": 0.9}, f, [np.array([0.2, 0.4, 0.95, 0.1]),
                                                                      np.array([0.55, 0.9])])
    assert not bad.passed and fig(bad, "frames decided alike").deployed == pytest.approx(5 / 6) and bad.disagree == [0]


def test_error_in_cents_skips_unvoiced_frames_and_fails_a_pitch_shift():
    hz = np.array([220.0, np.nan, 440.0, 330.0])
    close = hz * 2 ** (5 / 1200)  # 5 cents sharp everywhere
    ok = run({"kind": "error", "unit": "cents", "compare": "cents", "max": 20, "share_min": 0.99}, [hz], [close])
    assert ok.passed and fig(ok, "median error").deployed == pytest.approx(5.0)
    assert "3 values" in fig(ok, "share within").name  # the NaN (unvoiced) frame is not counted
    octave = close.copy()
    octave[2] = 880.0  # one frame an octave off
    bad = run({"kind": "error", "unit": "cents", "compare": "cents", "max": 20, "share_min": 0.99}, [hz], [octave])
    assert not bad.passed and fig(bad, "share within").deployed == pytest.approx(2 / 3)
    # absolute error, and a NaN where FP32 has a value counts as off
    assert not run({"kind": "error", "max": 0.1, "share_min": 1.0}, [np.array([1.0, 2.0])],
                   [np.array([1.0, np.nan])]).passed


def test_ranking_nearest_neighbours_and_spearman():
    rng = np.random.default_rng(0)
    emb = [rng.normal(size=16) for _ in range(6)]
    noisy = [e + rng.normal(scale=1e-3, size=16) for e in emb]
    ok = run({"kind": "ranking", "min": 1.0, "spearman_min": 0.99}, emb, noisy)
    assert ok.passed and fig(ok, "Spearman").deployed > 0.99
    shuffled = [emb[(i + 1) % 6] for i in range(6)]
    bad = run({"kind": "ranking", "min": 1.0, "spearman_min": 0.9}, emb, shuffled)
    assert not bad.passed
    assert spearman(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0)
    with pytest.raises(BadInput, match="at least 3"):
        run({"kind": "ranking"}, emb[:2], emb[:2])


def test_custom_metric_from_the_model_folder(tmp_path):
    (tmp_path / "metrics.py").write_text(
        "def score(fp32, deployed):\n    return sum(a == b for a, b in zip(fp32, deployed)) / len(fp32)\n")
    m = {"kind": "custom", "function": "metrics.py:score", "min": 0.9}
    assert run(m, [1, 2, 3], [1, 2, 3], folder=tmp_path).passed
    res = run(m, [1, 2, 3], [1, 0, 3], folder=tmp_path)
    assert not res.passed and res.figures[0].deployed == pytest.approx(2 / 3)


def test_postprocess_and_key_pick_a_field_of_the_answer(tmp_path):
    (tmp_path / "post.py").write_text(
        "import numpy as np\n"
        "def answer(outputs):\n    return {'label': int(np.argmax(outputs['logits'])), 'scores': outputs['logits']}\n")
    task = TaskSpec.model_validate({"postprocess": "post.py:answer", "metrics": [
        {"kind": "label", "key": "label", "min": 1.0}, {"kind": "topk", "key": "scores", "k": 1, "min": 1.0}]})
    f = [{"logits": np.array([0.1, 0.9])}, {"logits": np.array([0.7, 0.3])}]
    d = [{"logits": np.array([0.2, 0.8])}, {"logits": np.array([0.4, 0.6])}]
    out = check(task, tmp_path, f, d)
    assert [r.passed for r in out.results] == [False, False] and out.failing == ["label:label", "topk:scores"]
    assert out.fp32_answers[1]["label"] == 0 and out.deployed_answers[1]["label"] == 1
    with pytest.raises(BadInput, match="key 'nope'"):
        check(TaskSpec.model_validate({"postprocess": "post.py:answer",
                                       "metrics": [{"kind": "label", "key": "nope"}]}), tmp_path, f, d)


def test_a_postprocess_that_raises_is_bad_input_with_its_line(tmp_path):
    (tmp_path / "post.py").write_text("def answer(outputs):\n    return outputs['missing']\n")
    task = TaskSpec.model_validate({"postprocess": "post.py:answer", "metrics": [{"kind": "label"}]})
    with pytest.raises(BadInput) as e:
        check(task, tmp_path, [{"y": np.zeros(2)}], [{"y": np.zeros(2)}])
    assert "post.py:2" in str(e.value) and "KeyError" in str(e.value)


def test_a_nan_figure_never_passes_its_bar():
    res = run({"kind": "ranking", "min": 0.0, "spearman_min": 0.0}, [np.ones(3)] * 3, [np.ones(3)] * 3)
    sp = fig(res, "Spearman")
    assert math.isnan(sp.deployed) and sp.passed is False


def test_labels_keyed_like_the_answer_and_labels_that_do_not_fit_a_metric():
    """A dict label is picked by the metric's key; a class id is no per-frame label (said, not compared)."""
    task = TaskSpec.model_validate({"metrics": [{"kind": "label", "key": "cls"},
                                                {"kind": "decisions", "key": "probs", "threshold": 0.5}]})
    fp32 = [{"cls": 1, "probs": np.array([0.9, 0.1])}, {"cls": 0, "probs": np.array([0.2, 0.8])}]
    res = evaluate(task, fp32, fp32, [{"cls": 1}, {"cls": 1}], None)
    acc = fig(res[0], "accuracy vs labels")
    assert acc.fp32 == 0.5 and acc.deployed == 0.5
    plain_labels = evaluate(task, fp32, fp32, [1, 1], None)
    assert fig(plain_labels[0], "accuracy vs labels").fp32 == 0.5
    assert [f.name for f in plain_labels[1].figures] == ["frames decided alike (4)"]
    assert "not compared" in plain_labels[1].note


def _png(path, size=(64, 48)):
    from PIL import Image

    Image.new("RGB", size, (40, 40, 40)).save(path)
    return path


def _pixels(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int32)


def _magenta(px) -> int:
    """Pixels near the deployed boxes' colour (#bf3989)."""
    return int(np.sum((np.abs(px[..., 0] - 0xbf) < 40) & (np.abs(px[..., 1] - 0x39) < 40) & (np.abs(px[..., 2] - 0x89) < 40)))


def test_boxes_are_drawn_on_the_photo(tmp_path):
    from bot import plots

    photo = _png(tmp_path / "photo.png")
    box = [{"box": [8, 8, 40, 30], "score": 0.9, "label": "car"}]
    plots.detections_on_photo(photo, box, [], tmp_path / "fp32_only.png", "t")
    plots.detections_on_photo(photo, box, box, tmp_path / "both.png", "t")
    assert _magenta(_pixels(tmp_path / "both.png")) > 50 and _magenta(_pixels(tmp_path / "fp32_only.png")) < 10
    # normalized coordinates land on the same place as pixel ones
    norm = [{"box": [8 / 64, 8 / 48, 40 / 64, 30 / 48], "score": 0.9, "label": "car"}]
    plots.detections_on_photo(photo, box, norm, tmp_path / "norm.png", "t")
    assert np.mean(np.abs(_pixels(tmp_path / "norm.png") - _pixels(tmp_path / "both.png"))) < 1.0
    # the same figures give the same bytes (a re-run makes no new commit)
    plots.detections_on_photo(photo, box, box, tmp_path / "again.png", "t")
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "both.png").read_bytes()


def test_a_curve_over_time_shows_where_the_deployed_model_departs(tmp_path):
    from bot import plots

    f0 = np.array([220.0, 221, np.nan, 223, 224])
    plots.curve_over_time(f0, f0, tmp_path / "same.png", "t", "Hz")
    plots.curve_over_time(f0, f0 * np.array([1, 1, 1, 2, 1]), tmp_path / "off.png", "t", "Hz")
    assert (tmp_path / "same.png").read_bytes() != (tmp_path / "off.png").read_bytes()
    assert _magenta(_pixels(tmp_path / "off.png")) > 0
