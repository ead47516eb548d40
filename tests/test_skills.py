"""Every skill is valid Agent Skills format, its helpers run on their own, and skills ↔ catalogue agree.

The catalogue check is two-way: a skill may only name repairs that exist, and every repair the
catalogue holds must be named by some skill (so the rule planner and the agent can both find it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bot.skills import SKILLS_DIR, load_skill, load_skills, parse_repairs, repairs_named, validate
from bot.errors import BadInput

REQUIRED = {"pytorch-onnx-export", "qnn-operator-compat", "quantization-accuracy", "qnn-context-binary",
            "snpe-dlc", "validation-localization"}
FOLDERS = sorted(p for p in SKILLS_DIR.iterdir() if p.is_dir())


def test_required_skills_exist():
    assert REQUIRED <= {p.name for p in FOLDERS}


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_skill_is_valid(folder: Path):
    skill = load_skill(folder)  # strict: raises with every format error
    assert skill.name == folder.name
    assert len(skill.description) <= 1024 and "Use when" in skill.description
    assert len(skill.body.splitlines()) < 500
    assert skill.repairs, "a skill names the catalogue repairs it knows in a '## Repairs' section"
    assert skill.scripts(), "a skill ships at least one helper script"


def test_every_named_repair_exists_and_every_repair_is_named():
    from bot.repair.catalogue import all_repairs

    named = repairs_named(load_skills())
    catalogue = set(all_repairs())
    unknown = {r: s for r, s in named.items() if r not in catalogue}
    unnamed = sorted(catalogue - set(named))
    assert not unknown, f"skills name repairs the catalogue lacks: {unknown}"
    assert not unnamed, f"catalogue repairs no skill names: {unnamed}"


def test_validator_catches_format_errors():
    assert validate({"name": "a", "description": "d"}, "body", "a") == []
    errs = validate({"name": "Bad--Name-", "description": "x" * 1025, "model": "gpt", "metadata": {"k": 1}},
                    "", "other")
    text = " ".join(errs)
    for fragment in ("Unexpected fields", "lowercase", "must match", "1025", "metadata", "empty"):
        assert fragment in text
    assert "Missing required field in frontmatter: name" in validate({"description": "d"}, "b", "x")


def test_loader_refuses_bad_front_matter(tmp_path):
    d = tmp_path / "my-skill"
    d.mkdir()
    (d / "SKILL.md").write_text("no front matter")
    with pytest.raises(BadInput, match="front matter"):
        load_skill(d)
    (d / "SKILL.md").write_text("---\nname: other\ndescription: d\n---\nbody\n")
    with pytest.raises(BadInput, match="must match"):
        load_skill(d)
    assert load_skill(d, strict=False).name == "other"


def test_repairs_section_parsing():
    body = "# T\n## Repairs\n- `a-b`: when x\n* `c`: when y\nnot a line\n## Other\n- `d`: ignored\n"
    assert parse_repairs(body) == {"a-b": "when x", "c": "when y"}


SCRIPTS = sorted(p for f in FOLDERS for p in (f / "scripts").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_script_runs_on_its_own(script: Path):
    args = [] if script.name in ("soc_info.py", "ctx_info.py") else ["--help"]
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 2), proc.stderr
    assert (proc.stdout + proc.stderr).strip()


def _tiny_graph(path: Path, op: str = "Relu") -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    g = helper.make_graph([helper.make_node(op, ["x"], ["y"], name="n0")], "g", [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _run(script: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SKILLS_DIR / script), *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_helpers_do_real_work(tmp_path):
    g = _tiny_graph(tmp_path / "m.onnx")
    p = _run("qnn-operator-compat/scripts/inspect_graph.py", g, "--op", "Relu")
    assert p.returncode == 0 and '"Relu": 1' in p.stdout
    p = _run("qnn-operator-compat/scripts/probe_ops.py", g)
    assert p.returncode == 0 and "1/1 nodes on the HTP" in p.stdout, p.stdout + p.stderr
    p = _run("qnn-context-binary/scripts/soc_info.py", "SM8450")
    assert "HTP v69" in p.stdout and "SM8650" in p.stdout
    p = _run("snpe-dlc/scripts/snpe_commands.py", g, "--soc", "QCS6490", "--precision", "w8a16")
    assert "no int16" in p.stdout and "--htp_socs qcs6490" in p.stdout
    a = np.linspace(0, 1, 50, dtype=np.float32)
    np.savez(tmp_path / "r.npz", y=a)
    np.savez(tmp_path / "o.npz", y=a + 0.001)
    p = _run("validation-localization/scripts/compare_outputs.py", tmp_path / "r.npz", tmp_path / "o.npz")
    assert p.returncode == 0 and "cosine" in p.stdout
    np.savez(tmp_path / "o.npz", y=np.zeros_like(a))
    assert _run("validation-localization/scripts/compare_outputs.py", tmp_path / "r.npz", tmp_path / "o.npz").returncode == 1
