"""The repair loop on tiny modules that reproduce each failure class."""

from __future__ import annotations

import json

import pytest

from bot import backends
from bot.deploy import deploy
from bot.records import Failure, FailureKind, RejectedNode
from bot.repair.catalogue import all_repairs
from bot.repair.loop import RepairLoop, score
from bot.repair.state import RepairState
from bot.repair.taxonomy import classify
from bot.spec import load_spec
from tests.conftest import write_model

NONFACTOR_POOL = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Pool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.conv(x), (3, 5))  # 16 → 3/5: no TorchScript symbolic


def build():
    torch.manual_seed(0)
    return Pool().eval()
'''

# One activation carries a huge constant offset that a later layer removes: with 8-bit activations
# its scale (~1000/255) rounds the real signal (~±1) away and the output collapses. 16 bits on
# that one tensor keep it; localization has to find it.
OUTLIER = '''
import torch
import torch.nn as nn


class Outlier(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 1)
        self.c3 = nn.Conv2d(8, 4, 3, padding=1)
        offset = torch.zeros(1, 8, 1, 1)
        offset[0, 0] = 1000.0
        self.register_buffer("offset", offset)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        big = torch.relu(self.c2(h)) + self.offset  # the outlier tensor
        return self.c3(big - self.offset)


def build():
    torch.manual_seed(0)
    return Outlier().eval()
'''


def _loop(folder, out, workflow=None):
    spec, folder = load_spec(folder)
    return RepairLoop(spec, folder, out, backends.for_target(spec.target), workflow=workflow)


def test_taxonomy_refines_rejections_by_the_reason_text():
    f = Failure("compat", FailureKind.OP_REJECTED, "1 node rejected",
                nodes=[RejectedNode("/Expand", "Expand", "Type not supported.")])
    assert classify(f).kind == FailureKind.UNSUPPORTED_DTYPE
    f = Failure("compile", FailureKind.TOOL_ERROR, "x", log="QnnDsp <E> Dynamic tensor is not supported")
    assert classify(f).kind == FailureKind.DYNAMIC_SHAPE
    acc = Failure("validate", FailureKind.ACCURACY, "low")
    assert classify(acc) is acc  # accuracy is already as specific as it gets


def test_every_catalogue_repair_has_a_level_and_answers_something():
    cat = all_repairs()
    assert {"switch-exporter", "int16-localized", "w8a16-all", "fp16-precision", "source-patch"} <= set(cat)
    for r in cat.values():
        assert r.level in ("export", "graph", "quant", "source") and r.answers and r.summary


def test_export_error_is_repaired_by_switching_exporter(tmp_path):
    folder = write_model(tmp_path / "m", code=NONFACTOR_POOL)
    loop = _loop(folder, tmp_path / "o", workflow=["load", "export", "optimize"])
    first = loop.run_state(RepairState())
    assert first.failure.kind == FailureKind.EXPORT_ERROR and first.failure.stage == "export"
    result = loop.run(first)
    assert result.outcome.passed
    a = result.attempts[0]
    assert a.repair == "switch-exporter" and a.kept and a.level == "export"
    assert '"exporter": "dynamo"' in a.diff
    assert result.outcome.result("export").metrics["exporter"] == "dynamo"


@pytest.mark.htp
def test_collapsed_int8_output_is_repaired_with_16_bits_where_localization_points(tmp_path):
    folder = write_model(tmp_path / "m", {"target": {"precision": "w8a8"}}, code=OUTLIER)
    loop = _loop(folder, tmp_path / "o")
    first = loop.run_state(RepairState())
    assert first.failure is not None and first.failure.kind == FailureKind.ACCURACY
    layers = loop.localize(first)
    worst = max(layers, key=lambda e: e.sqnr_drop_db)
    # the loss shows where the offset is removed; the tensor to widen is the one it reads
    assert worst.op == "Sub", f"localization blamed {worst.tensor}"
    offset_tensor = next(e.tensor for e in layers if e.op == "Add")
    assert offset_tensor in worst.inputs
    result = loop.run(first)
    assert result.outcome.passed, result.stopped
    assert result.attempts[0].repair == "int16-localized" and result.attempts[0].kept
    overrides = result.state.options["quantize"]["overrides"]
    assert offset_tensor in overrides and len(overrides) < len(layers)  # mixed, not everything
    assert score(result.outcome).improves_on(score(first))


@pytest.mark.htp
def test_deploy_records_every_attempt_in_the_manifest(tmp_path):
    folder = write_model(tmp_path / "m", {"target": {"precision": "w8a8"}}, code=OUTLIER)
    out = tmp_path / "o"
    outcome = deploy(folder, out_dir=out)
    assert outcome.passed
    m = json.loads((out / "manifest.json").read_text())
    rep = m["repairs"][0]
    assert rep["repair"] == "int16-localized" and rep["level"] == "quant" and rep["kept"]
    assert rep["before"]["passed"] is False and rep["after"]["passed"] is True
    assert rep["seconds"] > 0 and "QUInt16" in rep["diff"]
    assert m["localization"]["layers"] and m["status"] == "deployed"
    assert m["llm"]["calls"] == 0 and m["llm"]["usd"] == 0.0  # a rule knew this one: no API cost


@pytest.mark.htp
def test_an_unfixable_failure_ends_within_the_bounds(tmp_path):
    folder = write_model(tmp_path / "m", {"validation": {"samples": 1, "outputs": {"y": {"max_abs_max": 0.0}}},
                                          "limits": {"repair_attempts": 3}})
    loop = _loop(folder, tmp_path / "o")
    result = loop.run(loop.run_state(RepairState()))
    assert not result.outcome.passed
    assert len(result.attempts) <= 3 and result.stopped
