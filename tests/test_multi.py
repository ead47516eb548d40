"""Several graphs, static variants, KV-cache decoding and a source-level repair, on the real
(simulated) HTP: every example in models/ that issue 7 added, deployed end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bot.errors import BadInput
from bot.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


@pytest.fixture(autouse=True)
def _no_forge(monkeypatch):
    monkeypatch.setenv("AIPC_FORGE", "off")


def _deploy(name: str, out: Path):
    from bot.deploy import deploy

    return deploy(MODELS / name, out_dir=out)


def _write(tmp_path: Path, raw: dict) -> Path:
    (tmp_path / "model.py").write_text("import torch\ndef build():\n    return torch.nn.Identity()\n")
    (tmp_path / "aipc.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path


# -- definition ---------------------------------------------------------------------------------
def test_graphs_and_variants_expand_to_static_specs():
    from bot.spec.expand import expand

    spec, _ = load_spec(MODELS / "yoloworld_tiny")
    parts = expand(spec)
    assert [p.rel for p in parts] == ["text_encoder", "detector/r64", "detector/r96"]
    shapes = {p.rel: {i.name: i.shape for i in p.spec.inputs} for p in parts}
    assert shapes["detector/r96"]["image"] == [1, 3, 96, 96] and shapes["detector/r64"]["image"] == [1, 3, 64, 64]
    assert all(p.spec.entry and not p.spec.graphs and not p.spec.variants for p in parts)


def test_a_single_graph_is_one_part_at_the_root_with_its_definition_unchanged():
    """The one flow deploys a single graph as a part at the deployment folder itself (rel ""), with the
    very Spec it was given: a copy renamed or re-validated would change the stages' content keys."""
    from bot.spec.expand import expand

    spec, _ = load_spec(MODELS / "tiny_classifier")
    [part] = expand(spec)
    assert part.at_root and part.rel == "" and part.variant is None and part.graph == spec.name
    assert part.spec is spec
    assert not any(p.at_root for p in expand(load_spec(MODELS / "yoloworld_tiny")[0]))


def test_variant_naming_an_unknown_input_is_a_field_path_error(tmp_path):
    from bot.spec.expand import expand

    folder = _write(tmp_path, {"entry": "model.py:build", "inputs": [{"name": "x", "shape": [1, 4]}],
                               "variants": [{"name": "a", "shapes": {"y": [1, 8]}}]})
    # refused when the definition is loaded, naming the inputs that exist
    with pytest.raises(BadInput, match=r"variants\[0\]\.shapes\.y: no input named 'y' \(the definition has: x\)"):
        load_spec(folder)


def test_bad_definitions_name_the_field(tmp_path):
    g = {"name": "g", "entry": "model.py:build", "inputs": [{"name": "x", "shape": [1, 4]}]}
    with pytest.raises(BadInput, match=r"graphs\[0\]\.variants\[0\]\.shapes: x: expected a list of positive"):
        load_spec(_write(tmp_path, {"graphs": [dict(g, variants=[{"name": "v", "shapes": {"x": [1, 0]}}])]}))
    with pytest.raises(BadInput, match="graph 'nope' is not one of the graphs"):
        load_spec(_write(tmp_path, {"graphs": [g], "chain": {"graphs": ["nope"], "reference": "model.py:build",
                                                              "outputs": ["y"]}}))
    with pytest.raises(BadInput, match="inputs: at least one input is required"):
        load_spec(_write(tmp_path, {"entry": "model.py:build"}))


# -- end to end on the HTP ------------------------------------------------------------------------
def test_decoder_only_lm_decodes_on_htp_like_pytorch_greedy(tmp_path):
    out = _deploy("tiny_lm", tmp_path / "lm")
    assert out.passed, out.manifest.get("parts")
    m = json.loads((tmp_path / "lm" / "manifest.json").read_text())
    dec = m["e2e"][0]
    assert dec["generated"] == dec["reference"] and dec["sequences_equal"] == dec["sequences"] == 4
    assert dec["token_agreement"] == 1.0 and dec["seconds_per_token"] > 0
    assert all(len(t) == 8 for t in dec["reference"]) and len({tuple(t) for t in dec["reference"]}) == 4
    # the packaged runtime decodes by itself (a fresh process, CPU fallback disabled)
    import subprocess
    import sys

    rt = tmp_path / "lm" / "runtime"
    proc = subprocess.run([sys.executable, str(rt / "decode_loop.py"), "--prompt", "1,5,9",
                           "--out", str(tmp_path / "t.json")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-800:]
    assert json.loads((tmp_path / "t.json").read_text())["runs"][0]["tokens"] == dec["reference"][0]

    # nightly's re-check goes part by part; a changed binary in one part fails it
    from bot.deploy import revalidate

    again = revalidate(MODELS / "tiny_lm", out_dir=tmp_path / "lm")
    assert again.passed and any(line.startswith("[") for line in again.lines)
    binary = next((tmp_path / "lm").glob("*/package/*.bin"))
    data = bytearray(binary.read_bytes())
    data[len(data) // 2] ^= 0xFF
    binary.write_bytes(bytes(data))
    assert not revalidate(MODELS / "tiny_lm", out_dir=tmp_path / "lm").passed


def test_whisper_style_encoder_decoder_with_host_frontend(tmp_path):
    out = _deploy("whisper_tiny", tmp_path / "wh")
    assert out.passed, out.manifest.get("parts")
    m = out.manifest
    enc = next(p for p in m["parts"] if p["graph"] == "encoder")
    assert enc["inputs"] == {"mel": [1, 16, 50]}  # log-mel frames in, not the waveform: front end on the host
    rt = tmp_path / "wh" / "runtime"
    assert (rt / "frontend.py").exists() and json.loads((rt / "decode.json").read_text())["frontend"] == "frontend.py:log_mel"
    dec = m["e2e"][0]
    assert dec["generated"] == dec["reference"] and dec["sequences"] == 2
    assert dec["reference"][0] != dec["reference"][1]  # the audio matters: the encoder path is exercised


def test_detector_variants_one_binary_each_and_chain_end_to_end(tmp_path):
    out = _deploy("yoloworld_tiny", tmp_path / "yw")
    assert out.passed, out.manifest.get("parts")
    m = out.manifest
    det = [p for p in m["parts"] if p["graph"] == "detector"]
    assert [p["variant"] for p in det] == ["r64", "r96"]
    bins = [b for p in det for b in p["binaries"]]
    assert len(bins) == 2 and len({p["binaries"][b]["sha256"] for p in det for b in p["binaries"]}) == 2
    for p in det:  # validated per variant, at its own resolution
        assert p["validate"]["passed"] and p["validate"]["outputs"]["scores"]["cosine"] >= 0.95
    n_cells = {p["variant"]: p["validate"] for p in det}
    assert len(n_cells) == 2
    chains = [e for e in m["e2e"] if e["name"].startswith("chain")]
    assert len(chains) == 2 and all(c["passed"] for c in chains)
    for c in chains:  # judged on the worst of the chain's samples, the pooled figure beside it
        for check in (k for k in c["checks"] if "cosine end to end" in k["name"]):
            assert check["detail"]["worst_sample"] in range(c["samples"])
            assert check["value"] == c["metrics"][check["name"].split()[0]]["worst_sample_cosine"]
    share = m["weight_sharing"]["detector"]
    assert share["generated"] and share["variants"] == ["r64", "r96"]
    assert share["deployed"] == ("one shared binary" if share["usable"] else "one binary per variant")


def test_rejected_op_is_fixed_by_a_skill_source_patch_at_no_cost(tmp_path):
    from bot import backends
    from bot.repair.state import RepairState
    from bot.repair.loop import RepairLoop

    spec, folder = load_spec(MODELS / "angle_head")
    backend = backends.for_target(spec.target)
    # without the skill's known fix, no rule can do anything for Acos
    blind = RepairLoop(spec, folder, tmp_path / "a", backend, exclude=["skill-patch"])
    result = blind.run(blind.run_state(RepairState()))
    assert not result.outcome.passed and result.outcome.failure.stage == "compat"
    assert [n.op for n in result.outcome.failure.nodes] == ["Acos"]
    assert result.stopped.startswith("no known repair")

    out = _deploy("angle_head", tmp_path / "b")
    assert out.passed, out.failure
    kept = [a for a in out.manifest["repairs"] if a["kept"]]
    assert [a["repair"] for a in kept] == ["skill-patch"] and kept[0]["level"] == "source"
    assert "torch.atan2" in kept[0]["diff"] and out.manifest["llm"]["calls"] == 0
    assert out.result("compat").metrics["fallback_nodes"] == 0
    assert out.result("validate").metrics["outputs"]["angles"]["cosine"] >= 0.99
    assert "torch.acos" in (folder / "model.py").read_text()  # the user's file is untouched


def test_every_part_goes_through_the_one_flow_with_the_revert_and_no_end_to_end_check_after_a_failed_part(
        tmp_path, monkeypatch):
    """deploy_parts hands `/aipc revert`'s exclusion to every part (it used to reach a single graph only),
    lists each part in the typed top manifest, and runs no chain check when a part did not deploy."""
    import bot.deploy as D
    from bot.manifest import Manifest
    from bot.records import Failure, FailureKind, RunOutcome, StageResult
    from bot.spec.expand import expand

    spec, folder = load_spec(MODELS / "yoloworld_tiny")
    seen = {}

    def fake_part(pspec, pfolder, out, backend, *, repair, events, say, exclude):
        seen[out.relative_to(tmp_path).as_posix()] = exclude
        bad = Failure("compat", FailureKind.OP_REJECTED, "refused") if "r96" in str(out) else None
        results = [StageResult("load", True, seconds=0.5), StageResult("compat", bad is None, failure=bad)]
        return RunOutcome(results, bad, out, {"model": pspec.name, "status": "failed" if bad else "deployed"})

    class Backend:
        name = "fake"

    monkeypatch.setattr(D, "deploy_part", fake_part)
    outcome = D.deploy_parts(spec, folder, tmp_path, Backend(), expand(spec), exclude=["fp16-precision"])
    assert seen == {rel: ["fp16-precision"] for rel in ("text_encoder", "detector/r64", "detector/r96")}
    m = Manifest.read(tmp_path)
    assert m.kind == "multi" and m.status == "failed" and m.e2e == []
    assert [(p.dir, p.passed, p.status) for p in m.parts] == [
        ("text_encoder", True, "deployed"), ("detector/r64", True, "deployed"), ("detector/r96", False, "failed")]
    assert m.parts[2].failure["stage"] == "compat" and m.parts[0].stage_seconds == {"load": 0.5, "compat": 0.0}
    assert not outcome.passed and outcome.failure.stage == "compat"
    assert [r.stage for r in outcome.results] == ["text_encoder", "detector/r64", "detector/r96"]
