"""The agent's tools: the only ways an LLM can touch a deployment.

Every tool acts through a project mechanism — the skills, the graph summary, the repair
catalogue, confined source patches, whitelisted stage options, the pipeline's own rerun — so a
model can propose but never write outside the model's folder or run arbitrary commands. Each
tool returns text for the model; errors are returned, not raised, so the loop can continue.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.agent.graph_info import activation_tensors
from bot.agent.graph_info import summarize
from bot.errors import BadInput
from bot.records import Failure
from bot.repair.catalogue import all_repairs
from bot.repair.patches import apply_patch, check_patch
from bot.repair.patches import working_copy
from bot.skills import Skill
from bot.stage_options import BY_STAGE, OptimizeOptions, QuantizeOptions, TensorOverride

MAX_RESULT = 6000
STAGE_GRAPHS = ("export", "optimize", "quantize", "compile")


def _knob_text(knob: str, schema: dict) -> str:
    """One knob for the tool's description, from its JSON schema: `stage.knob (values): why`."""
    kinds = [o for o in schema.get("anyOf", [schema]) if o.get("type") != "null"]
    k = kinds[0] if kinds else {}
    if "enum" in k:
        values = "|".join(map(str, k["enum"]))
    elif k.get("type") == "integer" and "minimum" in k and "maximum" in k:
        values = f"{k['minimum']}-{k['maximum']}"
    elif k.get("type") == "array":
        values = "list of graph rule ids" if knob == "optimize.rewrites" else "list"
    else:
        values = {"boolean": "bool", "integer": "int", "number": "number"}.get(k.get("type"), "value")
    return f"{knob} ({values}): {schema.get('description', '')}"


def agent_knobs() -> dict[str, dict]:
    """"stage.knob" → JSON schema, for the knobs the stages' options let the agent set (`knob(..., agent=True)`)."""
    return {f"{name}.{k}": schema for name, cls in BY_STAGE.items() for k, schema in cls.agent_knobs().items()}


KNOBS = agent_knobs()
QUANT_TYPES = typing.get_args(TensorOverride.model_fields["quant_type"].annotation)


def _fn(name: str, description: str, properties: dict, required: list[str] | None = None) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required or [],
                       "additionalProperties": False}}}


SCHEMAS = [
    _fn("read_skill", "Read the full instructions of one skill (its SKILL.md body).",
        {"name": {"type": "string"}}, ["name"]),
    _fn("list_files", "List the files of the model's folder (with the patches so far applied).", {}),
    _fn("read_file", "Read a text file of the model's folder (path relative to it), optionally a line range.",
        {"path": {"type": "string"}, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}}, ["path"]),
    _fn("inspect_graph", "Summarize the ONNX graph a stage produced: opset, I/O shapes and dtypes, op counts, "
        "int64 tensors, rank>4 tensors, the current rejected nodes; with `op`, the nodes of that type.",
        {"stage": {"type": "string", "enum": list(STAGE_GRAPHS)}, "op": {"type": "string"}}),
    _fn("run_script", "Run a skill's helper script (skills/<skill>/scripts/<script>) with arguments; "
        "the working directory is the deployment folder (stage outputs live in <stage>/).",
        {"skill": {"type": "string"}, "script": {"type": "string"},
         "args": {"type": "array", "items": {"type": "string"}}}, ["skill", "script"]),
    _fn("apply_repair", "Apply a named repair from the catalogue (with optional parameters) to the pending state.",
        {"repair_id": {"type": "string"}, "params": {"type": "object"}}, ["repair_id"]),
    _fn("propose_patch", "Add a unified diff against the model's folder (paths relative to it, e.g. "
        "'--- a/model.py' / '+++ b/model.py'). It is checked and test-applied; nothing outside the folder.",
        {"diff": {"type": "string"}}, ["diff"]),
    _fn("set_quant_overrides", "Set the quantization type of named activation tensors (mixed precision), "
        "e.g. QUInt16 for the tensors failure localization named. `clear` drops earlier overrides.",
        {"tensors": {"type": "array", "items": {"type": "string"}},
         "quant_type": {"type": "string", "enum": list(QUANT_TYPES)}, "clear": {"type": "boolean"}},
        ["tensors", "quant_type"]),
    _fn("set_option", "Set one stage knob: " + "; ".join(_knob_text(k, v) for k, v in KNOBS.items()) + ".",
        {"stage": {"type": "string", "enum": sorted({k.split(".")[0] for k in KNOBS})},
         "key": {"type": "string", "enum": sorted({k.split(".", 1)[1] for k in KNOBS})}, "value": {}},
        ["stage", "key", "value"]),
    _fn("rerun", "Run the pipeline with the pending state (unchanged stages are skipped) and see the outcome.", {}),
    _fn("give_up", "Stop: the failure needs a human. Say why in one paragraph.",
        {"reason": {"type": "string"}}, ["reason"]),
]


def short(value: Any, n: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= n else text[: n - 1] + "…"


def describe_failure(f: Failure | None) -> str:
    if f is None:
        return "no failure"
    lines = [f"stage: {f.stage}", f"kind: {f.kind.value}", f"message: {f.message}", f"signature: {f.signature()}"]
    for n in f.nodes[:20]:
        lines.append(f"rejected: {n.op} {n.name}: {n.reason}")
    if f.details:
        lines.append("details: " + short(f.details, 1500))
    if f.log:
        lines.append("log (tail):\n" + f.log[-1500:])
    return "\n".join(lines)


def _rank(outcome) -> float:
    """How far a run got: every stage passed beats any failure; otherwise stages reached."""
    if outcome is None:
        return -1
    return float("inf") if outcome.passed else len(outcome.results)


@dataclass
class Event:
    """What a tool call means for the loop beyond its text."""

    stop: str = ""  # "fixed" | "no-progress" | "gave-up"
    detail: str = ""


@dataclass
class ToolBox:
    req: Any  # AgentRequest (kept loose to avoid an import cycle)
    skills: dict[str, Skill]
    max_repeats: int = 2
    pending: Any = None
    best: Any = None
    best_state: Any = None
    last: Any = None
    seen: list[str] = field(default_factory=list)
    repeats: int = 0
    last_run_key: str | None = None
    _wc: Path | None = None
    _wc_key: str | None = None

    def __post_init__(self):
        self.pending = self.req.state.copy()
        self.best_state = self.req.state.copy()
        self.seen = [self.req.failure.signature()]

    # ---- plumbing
    @property
    def failure(self) -> Failure:
        return self.last.failure if self.last is not None and self.last.failure else self.req.failure

    def model_root(self) -> Path:
        """A working copy of the model folder with the pending patches applied (cached)."""
        key = json.dumps(self.pending.patches)
        if self._wc is None or self._wc_key != key:
            base = Path(tempfile.mkdtemp(prefix="aipc-agent-"))
            if self._wc is not None:
                shutil.rmtree(self._wc.parent, ignore_errors=True)
            self._wc = working_copy(self.req.model_dir, self.pending.patches, base / "model")
            self._wc_key = key
        return self._wc

    def close(self) -> None:
        if self._wc is not None:
            shutil.rmtree(self._wc.parent, ignore_errors=True)
            self._wc = None

    def call(self, name: str, args: dict) -> tuple[str, Event]:
        fn = getattr(self, f"t_{name}", None)
        if fn is None:
            return f"error: unknown tool {name!r}; tools: {', '.join(s['function']['name'] for s in SCHEMAS)}", Event()
        try:
            out = fn(**args)
        except TypeError as e:
            return f"error: bad arguments for {name}: {e}", Event()
        except BadInput as e:
            return f"error: {e.paragraph()}", Event()
        except Exception as e:  # a tool must never end the loop by itself
            return f"error: {name} raised {type(e).__name__}: {e}", Event()
        text, event = out if isinstance(out, tuple) else (out, Event())
        text = text if isinstance(text, str) else json.dumps(text, indent=1, default=str)
        if len(text) > MAX_RESULT:
            text = text[:MAX_RESULT] + f"\n… ({len(text) - MAX_RESULT} more characters cut)"
        return text, event

    # ---- tools
    def t_read_skill(self, name: str):
        s = self.skills.get(name)
        if s is None:
            raise BadInput(f"no skill {name!r}; skills: {', '.join(self.skills)}")
        return s.body

    def t_list_files(self):
        root = self.model_root()
        return "\n".join(str(p.relative_to(root)) for p in sorted(root.rglob("*"))
                         if p.is_file() and "__pycache__" not in p.parts)

    def t_read_file(self, path: str, start_line: int | None = None, end_line: int | None = None):
        root = self.model_root()
        p = _inside(root, path)
        if not p.is_file():
            raise BadInput(f"no file {path!r} in the model folder")
        lines = p.read_text(errors="replace").splitlines()
        a = max(1, start_line or 1)
        b = min(len(lines), end_line or len(lines))
        return "\n".join(f"{i:4d} {lines[i - 1]}" for i in range(a, b + 1))

    def t_inspect_graph(self, stage: str | None = None, op: str | None = None):
        order = [stage] if stage else ["optimize", "export"]
        for st in order:
            if st not in STAGE_GRAPHS:
                raise BadInput(f"stage must be one of {STAGE_GRAPHS}")
            p = Path(self.req.out_dir) / st / "model.onnx"
            if p.exists():
                info = summarize(p, op=op)
                info["rejected_now"] = [f"{n.op} {n.name}: {n.reason}" for n in self.failure.nodes[:30]]
                return info
        raise BadInput(f"no graph from stage(s) {order} yet (the run stopped at {self.failure.stage})")

    def t_run_script(self, skill: str, script: str, args: list[str] | None = None):
        s = self.skills.get(skill)
        if s is None:
            raise BadInput(f"no skill {skill!r}")
        if script not in s.scripts():
            raise BadInput(f"skill {skill} has no script {script!r}; it has: {', '.join(s.scripts()) or 'none'}")
        args = [str(a) for a in (args or [])]
        out_dir = Path(self.req.out_dir).resolve()
        for a in args:
            if a.startswith("/"):
                rp = Path(a).resolve()
                if not (rp.is_relative_to(out_dir) or rp.is_relative_to(Path(self.req.model_dir).resolve())):
                    raise BadInput(f"argument {a!r} is outside the deployment and model folders")
            elif ".." in Path(a).parts:
                raise BadInput(f"argument {a!r} climbs out of the deployment folder")
        timeout = 180
        proc = subprocess.run([sys.executable, str(s.folder / "scripts" / script), *args], cwd=out_dir,
                              capture_output=True, text=True, timeout=timeout)
        text = (proc.stdout + ("\n[stderr]\n" + proc.stderr[-2000:] if proc.stderr.strip() else "")).strip()
        return f"exit {proc.returncode}\n{text}"

    def t_apply_repair(self, repair_id: str, params: dict | None = None):
        cat = all_repairs()
        r = cat.get(repair_id)
        if r is None:
            raise BadInput(f"no repair {repair_id!r} in the catalogue; known: {', '.join(sorted(cat))}")
        if params is not None and not isinstance(params, dict):
            raise BadInput("params must be an object")
        ctx = dict(params or {})
        ctx.update({"params": params or {}, "spec": self.req.spec, "model_dir": self.req.model_dir,
                    "out_dir": self.req.out_dir, "outcome": self.last})
        new = r.propose(self.failure, self.pending, ctx) if r.propose else None
        if new is None:
            return f"{repair_id} has nothing to offer for this failure; pending state unchanged"
        self.pending = new
        return f"{repair_id} applied to the pending state: {short(new.options, 600)}; call rerun to test it"

    def t_propose_patch(self, diff: str):
        files = check_patch(diff, Path(self.req.model_dir))
        root = self.model_root()
        check_patch(diff, root)
        trial = Path(tempfile.mkdtemp(prefix="aipc-trial-"))
        try:
            shutil.copytree(root, trial / "m", symlinks=True)
            apply_patch(diff, trial / "m")
        finally:
            shutil.rmtree(trial, ignore_errors=True)
        self.pending = self.pending.copy()
        self.pending.patches.append(diff if diff.endswith("\n") else diff + "\n")
        return f"patch accepted (touches {', '.join(files)}); {len(self.pending.patches)} patch(es) pending; call rerun"

    def t_set_quant_overrides(self, tensors: list[str], quant_type: str, clear: bool = False):
        if quant_type not in QUANT_TYPES:
            raise BadInput(f"quant_type must be one of {QUANT_TYPES}")
        if not isinstance(tensors, list) or not all(isinstance(t, str) for t in tensors) or not tensors:
            raise BadInput("tensors must be a non-empty list of tensor names")
        graph = Path(self.req.out_dir) / "optimize" / "model.onnx"
        if graph.exists():
            known = set(activation_tensors(graph)) | {i.name for i in self.req.spec.inputs}
            unknown = [t for t in tensors if t not in known]
            if unknown:
                raise BadInput(f"no such tensor(s) in the optimized graph: {unknown[:10]}")
        have = {} if clear else self.pending.opts(QuantizeOptions).content().get("overrides", {})
        ov = {**have, **{t: {"quant_type": quant_type} for t in tensors}}
        self.pending = self.pending.with_options(QuantizeOptions, overrides=ov)
        return f"{len(ov)} quantization override(s) pending; call rerun"

    def t_set_option(self, stage: str, key: str, value: Any):
        if f"{stage}.{key}" not in KNOBS:
            raise BadInput(f"{stage}.{key} is not a knob; knobs: {', '.join(KNOBS)}")
        if stage == OptimizeOptions.stage and key == "rewrites" and isinstance(value, list):
            try:
                from bot.graph.rules import all_rules  # deferred: onnxscript, which the agent's light install may lack

                unknown = [v for v in value if v not in all_rules()]
            except ImportError:
                unknown = []
            if unknown:
                raise BadInput(f"unknown graph rule(s) {unknown}; known: {sorted(all_rules())}")
        self.pending = self.pending.with_option(stage, key, value)  # the stage's options model checks the value
        return f"{stage}.{key} = {json.dumps(value)} pending; call rerun"

    def t_rerun(self):
        key = json.dumps(self.pending.content(), sort_keys=True)
        if key == self.last_run_key:
            self.repeats += 1
            ev = Event("no-progress", "rerun with an unchanged state") if self.repeats >= self.max_repeats else Event()
            return "the pending state has not changed since the last rerun: change something first", ev
        self.last_run_key = key
        outcome = self.req.rerun(self.pending.copy())
        self.last = outcome
        if _rank(outcome) > _rank(self.best):
            self.best, self.best_state = outcome, self.pending.copy()
        if outcome.passed:
            return "PASSED: every stage passed", Event("fixed")
        sig = outcome.failure.signature() if outcome.failure else "?"
        text = "FAILED\n" + describe_failure(outcome.failure)
        if sig in self.seen:
            self.repeats += 1
            text += (f"\nNO PROGRESS: this failure (signature {sig}) was seen before "
                     f"({self.repeats}/{self.max_repeats} before the run stops). Try something different.")
            if self.repeats >= self.max_repeats:
                return text, Event("no-progress", f"signature {sig} again")
        else:
            self.repeats = 0
            self.seen.append(sig)
        return text, Event()

    def t_give_up(self, reason: str):
        return "understood", Event("gave-up", reason)


def _inside(root: Path, rel: str) -> Path:
    """Resolve a model-folder path, refusing absolute paths, `..` and symlinks."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or ".." in Path(rel).parts:
        raise BadInput(f"path {rel!r} must be relative to the model folder, without '..'")
    cur = root
    for part in Path(rel).parts:
        cur = cur / part
        if cur.is_symlink():
            raise BadInput(f"path {rel!r} goes through a symlink")
    if not cur.resolve().is_relative_to(root.resolve()):
        raise BadInput(f"path {rel!r} leaves the model folder")
    return cur
