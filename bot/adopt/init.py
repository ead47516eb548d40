"""`aipc init [FOLDER]`: write a commented `aipc.yaml` for the model found there, and prove it loads.

Why: adopting the bot in a model repository should start from the model file alone. The definition
is written with every default spelled out (read from `bot.spec.schema`, so it cannot disagree with
the loader), a `yaml-language-server` header so editors validate it as it is edited, and a comment
on every value saying where it came from. Then the load stage runs on it, so the file is known to
build the module and run it at the declared shapes before anyone deploys.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bot import __version__
from bot.adopt.discover import Found, discover, parse_input
from bot.errors import BadInput
from bot.spec.json_schema import SCHEMA_FILE
from bot.spec.loader import SPEC_FILE, load_spec
from bot.spec.schema import (DEFAULT_CALIBRATE_METHOD, DEFAULT_PER_CHANNEL, CalibrationSpec, LimitsSpec, Spec,
                             TargetSpec, ValidationSpec)
from bot.targets import SOCS

BOT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class InitResult:
    path: Path
    found: Found
    outputs: dict[str, list[int]] = field(default_factory=dict)  # what the load stage saw the model return


def schema_ref(spec_path: Path, bot_repository: str | None, tag: str) -> str | None:
    """Where the definition's editor finds the schema: a relative path inside the bot's own checkout
    (its examples), else the committed file at the pinned tag; None when the bot's repository is unknown."""
    local = BOT_ROOT / SCHEMA_FILE
    try:
        spec_path.resolve().relative_to(BOT_ROOT)
        if local.is_file():
            return os.path.relpath(local, spec_path.resolve().parent)
    except ValueError:
        pass
    if bot_repository is None:
        return None
    return f"https://raw.githubusercontent.com/{bot_repository}/{tag}/{SCHEMA_FILE}"


def model_name(folder: Path) -> str:
    name = re.sub(r"[^a-z0-9_.-]+", "-", folder.resolve().name.lower()).strip("-._")
    return name if name and name[0].isalnum() else f"model-{name}".rstrip("-")


PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
COMMENT_AT = 34


def _flow(value) -> str:
    """A YAML flow value: plain words stay plain, everything else as JSON (which YAML reads)."""
    if isinstance(value, str) and PLAIN.match(value) and value not in ("true", "false", "null", "yes", "no"):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return json.dumps(value)


def _line(text: str, comment: str = "") -> str:
    return f"{text:<{COMMENT_AT}}# {comment}" if comment else text


def render_definition(found: Found, name: str, header: str | None, outputs: list[str]) -> str:
    """The commented YAML. Values are the schema's own defaults, so the file says what will run."""
    t, c, v, lim = TargetSpec(), CalibrationSpec(), ValidationSpec(), LimitsSpec()
    default_cosine = Spec(name="x", entry="m.py:f", inputs=[{"name": "x", "shape": [1]}]).check_for("*").cosine_min
    lines = [f"# yaml-language-server: $schema={header}"] if header else []
    lines += [f"# Written by `aipc init` (aipc {__version__}). Every value is a default or was read from the",
              "# model; change any of them. Fields: docs/adopt.md" + (", and the schema above (your editor checks it)."
                                                                     if header else " and `aipc schema`."),
              f"name: {name}",
              _line(f"{found.field}: {found.source}", "returns the torch.nn.Module" if found.kind != "onnx" else
                   "the ONNX file"),
              "inputs:"]
    for i in found.inputs:
        lines.append(f"  # {i.origin}")
        item = {"name": i.name, "shape": i.shape, "dtype": i.dtype, "range": list(i.range or (0.0, 1.0))}
        lines.append("  - {" + ", ".join(f"{k}: {_flow(x)}" for k, x in item.items()) + "}")
    lines += [_line(f"outputs: {_flow(outputs)}", "read from the ONNX graph" if found.kind == "onnx" else
                    "PyTorch outputs are unnamed: rename them here"),
              _line("calibration:", "inputs the quantizer measures ranges on"),
              _line(f"  samples: {c.samples}", "random, in each input's range; or generator: calib.py:batches, "
                    "or files: [a.npz, …]"),
              _line("quantization:", "how the integer graph is made (docs/quantization.md)"),
              _line(f"  per_channel: {str(DEFAULT_PER_CHANNEL).lower()}",
                    "per-channel weight scales (Conv, ConvTranspose, Gemm, MatMul); false: per-tensor"),
              _line(f"  calibrate_method: {DEFAULT_CALIBRATE_METHOD}", "minmax | entropy | percentile | mse"),
              "target:",
              f"  runtime: {t.runtime}",
              _line(f"  soc: {t.soc}", f"known: {', '.join(sorted(SOCS))}"),
              _line(f"  precision: {t.precision}", "w8a8 | w8a16 | fp16"),
              _line(f"  engine: {t.engine}", "auto (the HTP simulator here) | ort-qnn | qairt-sdk | adb"),
              _line("validation:", "the compiled model against the original on the CPU"),
              f"  samples: {v.samples}",
              f"  # outputs: {{\"*\": {{cosine_min: {default_cosine}}}}}   per output name, or \"*\"; the default is "
              f"{default_cosine} for w8a16/w8a8, 0.99 for fp16;",
              "  #   also sqnr_min_db, psnr_min_db, max_abs_max, topk (a classifier's top-k agreement)",
              "# Real inputs instead of random ones (files in this folder, turned into input arrays by your",
              "# function), and task-level checks (top-k, detections, …): see README, \"The model definition\".",
              "# data: {preprocess: prep.py:preprocess, calibration: [\"data/calib/*\"], validation: [\"data/val/*\"]}",
              "# task: {postprocess: post.py:answer, metrics: [{kind: label, min: 0.99}]}",
              _line("limits:", "the repair loop's bounds"),
              f"  repair_attempts: {lim.repair_attempts}",
              _line(f"  llm_budget_usd: {lim.llm_budget_usd}", "0 turns the LLM agent off")]
    return "\n".join(lines) + "\n"


def init_model(folder: Path, inputs: list[str], *, choose: str | None = None, force: bool = False,
               bot_repository: str | None, tag: str) -> InitResult:
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"{folder} is not a folder")
    path = folder / SPEC_FILE
    if path.exists() and not force:
        raise BadInput(f"{path} already exists", hint="--force overwrites it")
    given: dict = {}
    for text in inputs:
        name, shape, dtype = parse_input(text)
        given[name] = (shape, dtype)
    found = discover(folder, given, choose)
    missing = [i.name for i in found.inputs if i.shape is None]
    if missing or not found.inputs:
        why = [u for u in found.unknown if any(repr(m) in u for m in missing) or u.startswith("the model's inputs")]
        raise BadInput("could not infer what a definition needs: " + "; ".join(why),
                       where=str(folder), hint="nothing was written")
    header = schema_ref(path, bot_repository, tag)
    if header is None:
        found.unknown.append("the bot's GitHub repository (this install is not a clone of it), so the editor's "
                             "schema header was left out: --bot-repository OWNER/NAME adds it")
    name = model_name(folder)
    previous = path.read_text() if path.exists() else None  # --force: kept if the new one does not load
    try:
        path.write_text(render_definition(found, name, header, found.outputs or ["output"]))
        spec, model_dir = load_spec(path)
        if found.kind == "onnx":
            return InitResult(path, found, outputs=_load_stage(spec, model_dir))
        # PyTorch does not say how many outputs there are: the load stage counts them, and they are
        # named as the loader names unnamed outputs
        returned = _load_stage(spec.model_copy(update={"outputs": []}), model_dir)
        path.write_text(render_definition(found, name, header, list(returned)))
        load_spec(path)
        return InitResult(path, found, outputs=returned)
    except BadInput as e:
        if previous is None:
            path.unlink(missing_ok=True)  # a definition that does not load is not left behind
        else:
            path.write_text(previous)
        raise BadInput(e.what, where=e.where, hint="nothing was written") from None


def _load_stage(spec, model_dir: Path) -> dict[str, list[int]]:
    """Run the load stage into a scratch folder; its figures are the outputs the model returned."""
    from bot import backends  # deferred: the backends and every stage module, only when init runs the load stage
    from bot.pipeline import Pipeline  # deferred: as above

    with tempfile.TemporaryDirectory(prefix="aipc-init-") as tmp:
        outcome = Pipeline(spec, model_dir, Path(tmp), backends.for_target(spec.target),
                           workflow=["load"]).run()
        res = outcome.result("load")
        if res is None or not res.passed:
            why = outcome.failure.message if outcome.failure else "a check failed"
            raise BadInput(f"the load stage failed on the written definition: {why}", where=str(model_dir / SPEC_FILE))
        return res.metrics.get("outputs", {})
