"""`aipc init` (finding the model, what it reads and what it says it cannot), `aipc init --workflows`
(pinned, actionlint-clean, every aipc command line real) and `aipc plan` (running nothing)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from bot.spec import load_spec
from bot.spec.json_schema import schema_errors

ROOT = Path(__file__).resolve().parents[1]
SINGLE_GRAPH_EXAMPLES = ["esrgan_tiny", "lprnet", "tiny_classifier", "angle_head"]
COMPOSITE_EXAMPLES = ["tiny_lm", "whisper_tiny", "yoloworld_tiny"]


def aipc(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def folder_with(tmp_path: Path, files: dict[str, str], name: str = "net") -> Path:
    folder = tmp_path / "models" / name
    folder.mkdir(parents=True)
    for rel, text in files.items():
        (folder / rel).write_text(text)
    return folder


CLASS_ONLY = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)

    def forward(self, image, scale: float = 1.0):
        return self.conv(image) * scale, self.conv(image).mean()
"""

BUILDER_AND_HELPERS = """
import torch
from torch import nn

class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return self.c(x)

def count(n):  # not a builder: takes an argument
    return n

def build() -> nn.Module:
    torch.manual_seed(0)
    return Block(3).eval()
"""

TOKENS = """
import torch
from torch import nn

class Lm(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(32, 8)
        self.out = nn.Linear(8, 32)

    def forward(self, tokens):
        return self.out(self.embed(tokens))
"""


# ------------------------------------------------------------------------------- aipc init


def test_init_says_plainly_it_cannot_infer_a_pytorch_shape_and_writes_nothing(tmp_path):
    folder = folder_with(tmp_path, {"model.py": CLASS_ONLY})
    r = aipc("init", folder)
    assert r.exit_code == 2
    assert "the shape of input 'image'" in r.output and "--input image=" in r.output
    assert "nothing was written" in r.output
    assert not (folder / "aipc.yaml").exists()


def test_init_on_a_class_reads_forward_and_counts_the_outputs(tmp_path):
    folder = folder_with(tmp_path, {"model.py": CLASS_ONLY})
    r = aipc("init", folder, "--input", "image=1x3x8x8")
    assert r.exit_code == 0, r.output
    raw = yaml.safe_load((folder / "aipc.yaml").read_text())
    assert raw["entry"] == "model.py:Net"
    assert raw["inputs"] == [{"name": "image", "shape": [1, 3, 8, 8], "dtype": "float32", "range": [0.0, 1.0]}]
    assert raw["outputs"] == ["output_0", "output_1"]  # two tensors, named as the loader names them
    assert "forward's optional argument 'scale' is left out" in r.output
    assert "load stage: passed; the model returns output_0 [1, 4, 8, 8], output_1 []" in r.output
    assert schema_errors(raw) == []
    spec, _ = load_spec(folder)
    assert spec.name == "net" and spec.target.precision == "w8a16"


def test_init_prefers_a_builder_and_lists_what_else_it_found(tmp_path):
    folder = folder_with(tmp_path, {"model.py": BUILDER_AND_HELPERS, "other.py": CLASS_ONLY})
    r = aipc("init", folder, "--input", "x=1x3x4x4")
    assert r.exit_code == 0, r.output
    assert yaml.safe_load((folder / "aipc.yaml").read_text())["entry"] == "model.py:build"
    assert "also found (not used; --model picks one): other.py:Net" in r.output
    # and --model picks another one
    r = aipc("init", folder, "--model", "other.py:Net", "--input", "image=1x3x4x4", "--force")
    assert r.exit_code == 0, r.output
    assert yaml.safe_load((folder / "aipc.yaml").read_text())["entry"] == "other.py:Net"


def test_init_refuses_to_overwrite_and_bad_input_flags(tmp_path):
    folder = folder_with(tmp_path, {"model.py": BUILDER_AND_HELPERS})
    assert aipc("init", folder, "--input", "x=1x3x4x4").exit_code == 0
    r = aipc("init", folder, "--input", "x=1x3x4x4")
    assert r.exit_code == 2 and "already exists" in r.output and "--force" in r.output
    r = aipc("init", folder, "--input", "x=1x3x0x4", "--force")
    assert r.exit_code == 2 and "--input 'x=1x3x0x4'" in r.output
    r = aipc("init", folder, "--input", "y=1x3x4x4", "--force")
    assert r.exit_code == 2 and "the model does not take" in r.output and "its inputs: x" in r.output
    empty = folder_with(tmp_path, {"notes.py": "x = 1\n"}, name="empty")
    r = aipc("init", empty)
    assert r.exit_code == 2 and "found no model" in r.output


def test_init_a_shape_the_model_cannot_run_keeps_nothing(tmp_path):
    folder = folder_with(tmp_path, {"model.py": BUILDER_AND_HELPERS})
    r = aipc("init", folder, "--input", "x=1x5x4x4")  # the conv wants 3 channels
    assert r.exit_code == 2 and "raised RuntimeError" in r.output and "nothing was written" in r.output
    assert not (folder / "aipc.yaml").exists()


def test_init_an_integer_input_takes_its_range_from_the_embedding(tmp_path):
    folder = folder_with(tmp_path, {"model.py": TOKENS})
    r = aipc("init", folder, "--input", "tokens=1x6:int32")
    assert r.exit_code == 0, r.output
    raw = yaml.safe_load((folder / "aipc.yaml").read_text())
    assert raw["inputs"] == [{"name": "tokens", "shape": [1, 6], "dtype": "int32", "range": [0, 31]}]
    assert "num_embeddings=32" in r.output


def _onnx_file(path: Path, dims) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, dims)
    graph = helper.make_graph([helper.make_node("Sigmoid", ["pixels"], ["probs"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_init_on_onnx_reads_inputs_outputs_and_static_shapes(tmp_path):
    folder = folder_with(tmp_path, {})
    _onnx_file(folder / "net.onnx", [1, 3, 8, 8])
    r = aipc("init", folder)
    assert r.exit_code == 0, r.output
    raw = yaml.safe_load((folder / "aipc.yaml").read_text())
    assert raw["onnx"] == "net.onnx" and "entry" not in raw
    assert raw["inputs"][0]["name"] == "pixels" and raw["inputs"][0]["shape"] == [1, 3, 8, 8]
    assert raw["outputs"] == ["probs"]
    assert "load stage: passed; the model returns probs [1, 3, 8, 8]" in r.output
    assert schema_errors(raw) == []


def test_init_on_onnx_with_a_dynamic_axis_asks_for_it(tmp_path):
    folder = folder_with(tmp_path, {})
    _onnx_file(folder / "net.onnx", ["batch", 3, 8, 8])
    r = aipc("init", folder)
    assert r.exit_code == 2 and "dynamic shape ['batch', 3, 8, 8]" in r.output
    assert "input 'pixels' has a dynamic shape" in r.output and "--input pixels=1x3x8x8" in r.output
    assert aipc("init", folder, "--input", "pixels=2x3x8x8").exit_code == 0
    assert yaml.safe_load((folder / "aipc.yaml").read_text())["inputs"][0]["shape"] == [2, 3, 8, 8]


@pytest.mark.parametrize("name", SINGLE_GRAPH_EXAMPLES)
def test_init_on_each_example_model_file_recovers_its_definition(name, tmp_path):
    """The example's model.py alone (its aipc.yaml removed) → a definition with the shipped entry
    point and inputs, that the loader and the committed schema accept, proved by the load stage."""
    shipped = yaml.safe_load((ROOT / "models" / name / "aipc.yaml").read_text())
    folder = tmp_path / "models" / name
    shutil.copytree(ROOT / "models" / name, folder, ignore=shutil.ignore_patterns("aipc.yaml", "__pycache__"))
    shapes = [f"{i['name']}=" + "x".join(map(str, i["shape"])) for i in shipped["inputs"]]
    r = aipc("init", folder, *[a for s in shapes for a in ("--input", s)])
    assert r.exit_code == 0, r.output
    raw = yaml.safe_load((folder / "aipc.yaml").read_text())
    assert raw["entry"] == shipped["entry"]
    assert [(i["name"], i["shape"]) for i in raw["inputs"]] == [(i["name"], i["shape"]) for i in shipped["inputs"]]
    assert len(raw["outputs"]) == len(shipped["outputs"])
    assert schema_errors(raw) == []
    assert load_spec(folder)[0].name == name


@pytest.mark.parametrize("name", COMPOSITE_EXAMPLES)
def test_init_on_a_composite_example_writes_one_graph_and_says_it_cannot_infer_the_rest(name, tmp_path):
    """A decode loop or a chain cannot be read from a model file: given the first graph's shapes, init
    writes a single-graph definition for it and says plainly that the composite is not inferred."""
    shipped = yaml.safe_load((ROOT / "models" / name / "aipc.yaml").read_text())
    first = shipped["graphs"][0]
    folder = tmp_path / "models" / name
    shutil.copytree(ROOT / "models" / name, folder, ignore=shutil.ignore_patterns("aipc.yaml", "__pycache__"))
    args = [a for i in first["inputs"] for a in
            ("--input", f"{i['name']}=" + "x".join(map(str, i["shape"])) + (f":{i['dtype']}" if "dtype" in i else ""))]
    r = aipc("init", folder, *args)
    assert r.exit_code == 0, r.output
    assert "does not infer a decode loop or a chain" in r.output
    raw = yaml.safe_load((folder / "aipc.yaml").read_text())
    assert not {"graphs", "decode", "chain"} & set(raw)
    assert [i["name"] for i in raw["inputs"]] == [i["name"] for i in first["inputs"]]
    assert schema_errors(raw) == []


# ------------------------------------------------------------------------------- aipc init --workflows


def test_workflows_are_pinned_lint_clean_and_name_real_commands(tmp_path):
    from test_workflows import actionlint, aipc_invocations

    import typer

    from bot import __version__

    repo = tmp_path / "repo"
    (repo / "models" / "net").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    r = aipc("init", repo / "models" / "net", "--workflows", "--bot-repository", "example/aipc-bot")
    assert r.exit_code == 0, r.output
    flows = sorted((repo / ".github" / "workflows").glob("*.yml"))
    assert [p.name for p in flows] == ["aipc-commands.yml", "aipc-deploy.yml", "aipc-nightly.yml"]
    tag = f"v{__version__}"
    p = subprocess.run([*actionlint(), *[str(f.relative_to(repo)) for f in flows]], cwd=repo,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    cli = typer.main.get_command(app)
    for path in flows:
        wf = yaml.safe_load(path.read_text())
        wf["on"] = wf.pop(True, wf.get("on"))
        assert wf["permissions"] == {}
        text = path.read_text()
        assert "@main" not in text and "github.sha }}\n" not in text.split("bot-ref:")[-1][:30]
        for job in wf["jobs"].values():
            if "uses" in job:  # the self-hosted work: the bot's reusable workflow at the tag
                assert job["uses"] == f"example/aipc-bot/.github/workflows/aipc-reusable.yml@{tag}"
                assert job["with"]["bot-repository"] == "example/aipc-bot" and job["with"]["bot-ref"] == tag
            for step in job.get("steps", []):
                if step.get("with", {}).get("repository") == "example/aipc-bot":
                    assert step["with"]["ref"] == tag
                if "aipc-cli" in step.get("uses", ""):
                    assert step["uses"] == f"example/aipc-bot/.github/actions/aipc-cli@{tag}"
                for sub, options in aipc_invocations(step.get("run", "")):
                    assert sub in cli.commands, (path.name, sub)
                    known = {o for prm in cli.commands[sub].params for o in (*prm.opts, *prm.secondary_opts)}
                    assert set(options) <= known, (path.name, sub, options)
    deploy = yaml.safe_load((repo / ".github" / "workflows" / "aipc-deploy.yml").read_text())
    assert set(deploy.pop(True)) == {"push", "pull_request", "workflow_dispatch"}
    # written once; a second run does not overwrite without --force
    r = aipc("init", repo, "--workflows", "--bot-repository", "example/aipc-bot")
    assert r.exit_code == 2 and "already exist" in r.output


def test_the_cli_action_installs_from_a_given_checkout():
    """The adopting repository's hosted jobs check the bot out beside their code and install from there."""
    action = yaml.safe_load((ROOT / ".github" / "actions" / "aipc-cli" / "action.yml").read_text())
    assert action["inputs"]["path"]["default"] == "."
    step = action["runs"]["steps"][0]
    assert step["env"]["BOT"] == "${{ inputs.path }}" and '-e "$BOT"' in step["run"]


# ------------------------------------------------------------------------------- aipc plan


def test_plan_runs_nothing_and_shows_the_resolved_definition(tmp_path):
    folder = folder_with(tmp_path, {"model.py": BUILDER_AND_HELPERS})
    assert aipc("init", folder, "--input", "x=1x3x4x4").exit_code == 0
    out = tmp_path / "deployments" / "net"
    r = aipc("plan", folder, "--out", out, "--json")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.output)
    assert plan["resolved"]["target"] == {"runtime": "qnn", "backend": "htp", "soc": "SM8650", "precision": "w8a16",
                                          "engine": "auto", "per_channel": None}
    # per-channel weights by default (issue 14), shown resolved in the quantization section
    assert plan["resolved"]["quantization"]["per_channel"] is True
    assert plan["resolved"]["quantization"]["calibrate_method"] == "minmax"
    assert plan["resolved"]["calibration"]["samples"] == 8 and plan["resolved"]["export"]["opset"] == 17
    stages = plan["parts"][0]["stages"]
    assert [s["stage"] for s in stages] == ["load", "export", "optimize", "compat", "quantize", "compile", "validate",
                                             "package"]
    assert stages[0]["status"] == "would run" and stages[0]["why"] == "never deployed here"
    assert {s["status"] for s in stages[1:]} == {"after an earlier stage"}
    assert not out.exists()  # nothing was run or written
    text = aipc("deploy", folder, "--out", out, "--dry-run")
    assert text.exit_code == 0 and "resolved definition" in text.output and not out.exists()


def test_plan_on_a_composite_example_lists_every_part():
    r = aipc("plan", ROOT / "models" / "yoloworld_tiny", "--json", "--out", "/nonexistent/aipc-plan")
    assert r.exit_code == 0, r.output
    parts = [p["part"] for p in json.loads(r.output)["parts"]]
    assert parts == ["text_encoder", "detector/r64", "detector/r96"]


def test_plan_lists_the_repairs_the_last_run_kept_and_the_reverted_ones(tmp_path):
    """What `/aipc revert` and the repair loop left in the manifest is what the plan says will happen."""
    folder = folder_with(tmp_path, {"model.py": BUILDER_AND_HELPERS})
    assert aipc("init", folder, "--input", "x=1x3x4x4").exit_code == 0
    out = tmp_path / "deployments" / "net"
    out.mkdir(parents=True)
    (out / "manifest.json").write_text(json.dumps({
        "status": "deployed", "definition": {}, "versions": {}, "stages": [],
        "repairs": [{"repair": "signed-weights", "level": "quant", "reason": "accuracy at validate: cosine 0.41",
                     "kept": True},
                    {"repair": "w8a16-all", "level": "quant", "reason": "accuracy at validate", "kept": False}],
        "reverted": ["int16-localized"]}))
    r = aipc("plan", folder, "--out", out)
    assert r.exit_code == 0, r.output
    assert "signed-weights (quant): accuracy at validate: cosine 0.41" in r.output
    assert "w8a16-all" not in r.output  # tried and discarded: not remembered
    assert "reverted (never tried again): int16-localized" in r.output
    assert "(last run: deployed)" in r.output
    assert "load      ▶ would run" in r.output and "the definition changed: entry" in r.output


@pytest.mark.htp
@pytest.mark.parametrize("name", ["tiny_classifier", "angle_head"])
def test_a_definition_init_wrote_for_an_example_deploys(name, tmp_path):
    """The 32×32 examples (esrgan_tiny and lprnet deploy the same way; docs/adopt.md says how to check):
    the example's model file alone → aipc init → aipc deploy, exit 0 and every threshold met. angle_head
    also needs the repair loop (torch.acos), which the init-written definition leaves on."""
    shipped = yaml.safe_load((ROOT / "models" / name / "aipc.yaml").read_text())
    folder = tmp_path / "models" / name
    shutil.copytree(ROOT / "models" / name, folder, ignore=shutil.ignore_patterns("aipc.yaml", "__pycache__"))
    shapes = [a for i in shipped["inputs"] for a in ("--input", f"{i['name']}=" + "x".join(map(str, i["shape"])))]
    assert aipc("init", folder, *shapes).exit_code == 0
    out = tmp_path / "deployments" / name
    r = aipc("deploy", folder, "--out", out)
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "deployed"
    assert all(c["passed"] for s in manifest["stages"] for c in s.get("checks", []))


# ------------------------------------------------------------------------- which repository the bot is


def test_the_bot_repository_comes_from_the_clones_origin_and_nothing_is_guessed(tmp_path, monkeypatch):
    """A clone of the bot (how the reusable workflow and the README install it) knows its repository;
    any other install knows none, and then --workflows refuses and init leaves the schema header out
    and says so, rather than pointing a team's workflows at a made-up repository."""
    import bot.adopt as adopt

    monkeypatch.delenv("AIPC_BOT_REPOSITORY", raising=False)
    clone = tmp_path / "bot-clone"
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    monkeypatch.setattr(adopt, "BOT_CHECKOUT", clone)
    from email.message import Message

    monkeypatch.setattr(adopt.metadata, "metadata", lambda name: Message())  # and the package names no URL
    assert adopt.bot_repository_of_install() is None
    assert adopt.pinned()[0] is None
    for url in ("https://github.com/qc-edge/aipc-bot.git", "git@github.com:qc-edge/aipc-bot.git",
                "https://x-access-token:t@github.com/qc-edge/aipc-bot"):
        subprocess.run(["git", "-C", str(clone), "remote", "remove", "origin"], capture_output=True)
        subprocess.run(["git", "-C", str(clone), "remote", "add", "origin", url], check=True)
        assert adopt.bot_repository_of_install() == "qc-edge/aipc-bot", url
    subprocess.run(["git", "-C", str(clone), "remote", "remove", "origin"], check=True)
    built = Message()
    built["Project-URL"] = "Homepage, https://example.org/aipc"
    built["Project-URL"] = "Repository, https://github.com/pkg-owner/aipc-bot"
    monkeypatch.setattr(adopt.metadata, "metadata", lambda name: built)  # an install from a built package
    assert adopt.bot_repository_of_install() == "pkg-owner/aipc-bot"
    monkeypatch.setattr(adopt.metadata, "metadata", lambda name: Message())
    assert adopt.pinned("mine/bot")[0] == "mine/bot"
    monkeypatch.setenv("AIPC_BOT_REPOSITORY", "env/bot")
    assert adopt.pinned()[0] == "env/bot"

    monkeypatch.delenv("AIPC_BOT_REPOSITORY")
    repo = tmp_path / "repo"
    (repo / "models" / "net").mkdir(parents=True)
    r = aipc("init", repo / "models" / "net", "--workflows")
    assert r.exit_code == 2 and "--bot-repository OWNER/NAME" in r.output, r.output
    assert not (repo / ".github").exists()

    folder = folder_with(tmp_path / "other", {"model.py": CLASS_ONLY})
    r = aipc("init", folder, "--input", "image=1x3x8x8")
    assert r.exit_code == 0, r.output
    text = (folder / "aipc.yaml").read_text()
    assert "yaml-language-server" not in text and text.startswith("# Written by `aipc init`")
    assert "not inferred: the bot's GitHub repository" in " ".join(r.output.split())
    load_spec(folder)
