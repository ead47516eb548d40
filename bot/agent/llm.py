"""The LLM repair agent: chat completions with tools through the `openai` client, strictly bounded.

The repair loop calls `run_agent` only for failures its rules could not fix. The model sees the
skills' names and descriptions (bodies on request), the failure, and tools that act only through
the project's mechanisms (`bot.agent.tools`). It ends on the first passing rerun ("fixed"), or
with "needs-human" when a bound is hit — steps, USD (usage × price table, checked *before* each
call so a call that could overspend is never made), wall time, no progress (the same failure
signature again), an API error after the client's retries — keeping the best state it reached.
Any OpenAI-compatible server works through `base_url`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bot.agent import budget as B
from bot.skills import catalogue_prompt, load_skills
from bot.agent.tools import SCHEMAS, ToolBox, describe_failure, short
from bot.pipeline.runner import default_workflow
from bot.records import Failure
from bot.repair.catalogue import all_repairs

DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_TIMEOUT = 120.0
DEFAULT_RETRIES = 2
DEFAULT_MAX_OUTPUT = 4096


@dataclass
class AgentRequest:
    failure: Failure  # the structured failure the rules could not fix
    state: Any  # bot.repair.state.RepairState: options + patches so far
    model_dir: Path
    out_dir: Path
    spec: Any  # bot.spec.Spec
    rerun: Callable[[Any], Any]  # RepairState → bot.pipeline.RunOutcome (cached stages skipped)
    limits: Any  # bot.spec.schema.LimitsSpec: llm_steps, llm_budget_usd, wall_seconds
    notes: str = ""  # optional: what the rule planner already tried, for the prompt


@dataclass
class AgentResult:
    outcome: str  # "fixed" | "needs-human" | "disabled"
    state: Any  # best state found (kept even on needs-human)
    best: Any  # RunOutcome | None
    usage: dict  # {"calls", "tokens_in", "tokens_out", "usd", "seconds"}
    transcript: list[dict]  # per step: tool, args (short), result (short)
    reason: str  # fixed / budget / steps / wall / no-progress / api-error / gave-up / disabled
    detail: str = ""  # the human-readable why (error text, the model's give-up paragraph, …)
    model: str = ""
    price: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The manifest's view: no RunOutcome, just what a reviewer reads."""
        return {"outcome": self.outcome, "reason": self.reason, "detail": self.detail, "model": self.model,
                "usage": self.usage, "price_per_mtok": self.price, "patches": len(getattr(self.state, "patches", [])),
                "options": getattr(self.state, "options", {}), "transcript": self.transcript}


@dataclass
class LLMConfig:
    api_key: str | None
    model: str
    base_url: str | None
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_RETRIES
    max_output_tokens: int = DEFAULT_MAX_OUTPUT
    price: tuple[float, float] | None = None  # USD per 1M (in, out), overriding the table


def resolve_config(spec: Any = None) -> LLMConfig:
    """Environment first (the operator controls keys and spend), then the definition's `llm:`, then defaults.

    The key is only ever read from the environment; a definition may name which variable holds it.
    """
    llm = getattr(spec, "llm", None) if spec is not None else None
    get = (lambda k, d=None: getattr(llm, k, d) if llm is not None else d)
    key_env = get("api_key_env") or "AIPC_LLM_API_KEY"
    key = os.environ.get(key_env) or os.environ.get("AIPC_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
    model = os.environ.get("AIPC_LLM_MODEL") or get("model") or DEFAULT_MODEL
    base = os.environ.get("AIPC_LLM_BASE_URL") or get("base_url") or os.environ.get("OPENAI_BASE_URL") or None
    timeout = float(os.environ.get("AIPC_LLM_TIMEOUT") or get("timeout_seconds") or DEFAULT_TIMEOUT)
    env_retries, spec_retries = os.environ.get("AIPC_LLM_MAX_RETRIES"), get("max_retries")
    retries = int(env_retries if env_retries else spec_retries if spec_retries is not None else DEFAULT_RETRIES)
    pin, pout = get("price_in_per_mtok"), get("price_out_per_mtok")
    price = (float(pin), float(pout)) if pin is not None and pout is not None else None
    return LLMConfig(key, model, base, timeout, retries, int(get("max_output_tokens") or DEFAULT_MAX_OUTPUT), price)


def configured(spec: Any = None) -> tuple[bool, str]:
    """Whether the agent can run; the message is what the loop prints ("rule planner only" when not)."""
    cfg = resolve_config(spec)
    if not cfg.api_key:
        return False, "no API key (set AIPC_LLM_API_KEY or OPENAI_API_KEY): rule planner only"
    return True, f"LLM agent: {cfg.model} at {cfg.base_url or 'api.openai.com'}"


def make_client(cfg: LLMConfig):
    from openai import OpenAI  # deferred: only the LLM agent needs the client

    return OpenAI(api_key=cfg.api_key, base_url=cfg.base_url, max_retries=cfg.max_retries, timeout=cfg.timeout)


SYSTEM = """You repair a failed deployment of a PyTorch model to Qualcomm QNN on the HTP (NPU).
The bot runs fixed stages: {workflow}. One failed; its rules found no known fix.

How to work:
- Read the relevant skill first (read_skill); skills carry the error strings and what fixes them.
- Look before you change: read_file, inspect_graph, run_script (the skills' helpers).
- Change only through the tools: apply_repair (a catalogue repair by id), set_option,
  set_quant_overrides, propose_patch (a unified diff against the model's folder, paths relative to
  it). Keep the model's meaning: a patch must compute the same function (exact rewrites, not
  approximations), and never weaken the validation thresholds.
- Then call rerun. Every stage is checked against the PyTorch FP32 golden outputs.
- If the failure cannot be fixed without changing what the model computes, call give_up.
Each reply costs money: act, do not narrate.

Model: {name}; target {runtime} on {soc} ({precision}); inputs {inputs}.

Catalogue repairs (apply_repair):
{repairs}

{skills}
"""


def _repairs_text() -> str:
    try:
        cat = all_repairs()
    except Exception as e:  # the catalogue is optional for the agent: tools still work
        return f"(catalogue unavailable: {type(e).__name__})"
    return "\n".join(f"- {r.id} [{r.level}]: {r.summary}" for r in cat.values()) or "(none)"


def _system_prompt(req: AgentRequest, skills) -> str:
    spec = req.spec
    return SYSTEM.format(
        workflow=" → ".join(default_workflow()), name=spec.name, runtime=spec.target.runtime, soc=spec.target.soc,
        precision=spec.target.precision, inputs=", ".join(f"{i.name}{i.shape}" for i in spec.inputs),
        repairs=_repairs_text(), skills=catalogue_prompt(skills))


def _user_prompt(req: AgentRequest) -> str:
    st = req.state
    return ("The failure:\n" + describe_failure(req.failure)
            + f"\n\nState so far: options {json.dumps(st.options, default=str)}; {len(st.patches)} patch(es)."
            + (f"\nAlready tried by the rules: {req.notes}" if req.notes else "")
            + "\nFix it.")


def _usage_of(resp, messages: list, text: str) -> tuple[int, int, int, bool]:
    u = getattr(resp, "usage", None)
    if u is None or u.prompt_tokens is None:
        return len(json.dumps(messages, default=str)) // 4, len(text) // 4, 0, True
    det = getattr(u, "prompt_tokens_details", None)
    cached = getattr(det, "cached_tokens", 0) or 0 if det is not None else 0
    return int(u.prompt_tokens or 0), int(u.completion_tokens or 0), int(cached), False


def _assistant_dict(msg) -> dict:
    d: dict[str, Any] = {"role": "assistant", "content": msg.content or ""}
    if msg.tool_calls:
        d["tool_calls"] = [{"id": tc.id, "type": "function",
                            "function": {"name": tc.function.name, "arguments": tc.function.arguments or ""}}
                           for tc in msg.tool_calls]
    return d


def _bounded(client, remaining: float):
    """The client, with its timeout cut to the wall time left when that is shorter."""
    own = getattr(client, "timeout", None)
    own = own if isinstance(own, (int, float)) else getattr(own, "read", None)
    if isinstance(own, (int, float)) and own <= remaining:
        return client
    return client.with_options(timeout=max(1.0, remaining))


def run_agent(req: AgentRequest, *, client=None) -> AgentResult:
    """Drive the model until the pipeline passes or a bound is hit; never raises for API trouble."""
    import openai  # deferred: only the LLM agent needs the client

    cfg = resolve_config(req.spec)
    usage = B.Usage()
    price = B.price_for(cfg.model, override=cfg.price)
    price_d = {"model": price.model, "in": price.usd_in, "out": price.usd_out}

    def result(outcome, reason, detail="", tb=None, transcript=()):
        best = tb.best if tb else None
        state = tb.best_state if tb and tb.best is not None else req.state
        if tb:
            tb.close()
        return AgentResult(outcome, state, best, usage.to_dict(), list(transcript), reason, detail, cfg.model, price_d)

    limits = req.limits
    if client is None:
        ok, why = configured(req.spec)
        if not ok:
            return result("disabled", "disabled", why)
    if limits.llm_budget_usd <= 0 or limits.llm_steps <= 0:
        return result("disabled", "disabled", "limits.llm_budget_usd or limits.llm_steps is 0: rule planner only")
    if client is None:
        client = make_client(cfg)

    skills = load_skills(strict=False)
    tb = ToolBox(req, skills)
    bounds = B.Bounds(limits.llm_steps, limits.llm_budget_usd, limits.wall_seconds)
    messages: list[dict] = [{"role": "system", "content": _system_prompt(req, skills)},
                            {"role": "user", "content": _user_prompt(req)}]
    transcript: list[dict] = []
    steps, text_only, last_prompt = 0, 0, 0
    reason, detail = "", ""

    while True:
        reason = bounds.exceeded(usage, steps)
        if reason:
            detail = {"budget": f"USD {usage.usd:.4f} of {bounds.usd} spent", "steps": f"{steps} LLM steps",
                      "wall": f"{usage.seconds:.0f}s of {bounds.wall_seconds}s"}[reason]
            break
        # would the next call overspend? (prompt ≈ last prompt + what was added since; worst-case output)
        est_in = max(last_prompt, len(json.dumps(messages, default=str)) // 4)
        est = (est_in * price.usd_in + cfg.max_output_tokens * price.usd_out) / 1e6
        if usage.usd + est > bounds.usd:
            reason, detail = "budget", f"the next call could cost ~USD {est:.4f}; USD {usage.usd:.4f} of {bounds.usd} spent"
            break
        try:
            resp = _bounded(client, bounds.remaining_seconds(usage)).chat.completions.create(model=cfg.model, messages=messages, tools=SCHEMAS, tool_choice="auto",
                                         max_completion_tokens=cfg.max_output_tokens)
        except openai.APIError as e:
            usage.errors += 1
            status = getattr(e, "status_code", None)
            reason, detail = "api-error", f"{type(e).__name__}{f' {status}' if status else ''}: {short(str(e), 300)}"
            transcript.append({"step": steps + 1, "tool": "llm", "args": "", "result": detail})
            break
        steps += 1
        msg = resp.choices[0].message
        text = msg.content or ""
        pin, pout, cached, est_flag = _usage_of(resp, messages, text + json.dumps(
            [tc.function.arguments for tc in (msg.tool_calls or [])]))
        cost = usage.add(price, pin, pout, cached, est_flag)
        last_prompt = pin + pout
        transcript.append({"step": steps, "tool": "llm", "args": "", "result": short(text, 200),
                           "tokens_in": pin, "tokens_out": pout, "usd": round(cost, 6),
                           "finish": resp.choices[0].finish_reason})
        messages.append(_assistant_dict(msg))
        if not msg.tool_calls:
            text_only += 1
            if text_only >= 2:
                reason, detail = "no-progress", "the model replied twice without using a tool"
                break
            messages.append({"role": "user", "content": "Use the tools to act (rerun to test a change), "
                                                        "or call give_up with the reason."})
            continue
        text_only = 0
        stop = None
        for tc in msg.tool_calls:
            name, raw = tc.function.name, tc.function.arguments or "{}"
            try:
                args = json.loads(raw) if raw.strip() else {}
                if not isinstance(args, dict):
                    raise ValueError("arguments must be a JSON object")
            except ValueError as e:
                out, ev = (f"error: the arguments of {name} are not a valid JSON object ({e}); "
                           "send them again as one JSON object matching the tool's schema"), None
            else:
                out, ev = tb.call(name, args)
            messages.append({"role": "tool", "tool_call_id": tc.id, "content": out})
            transcript.append({"step": steps, "tool": name, "args": short(raw, 200), "result": short(out, 300)})
            if ev is not None and ev.stop:
                stop = ev  # later calls in the same reply are not run: the outcome is decided
                break
        if stop is not None:
            reason, detail = stop.stop, stop.detail
            break

    if tb.best is not None and tb.best.passed:
        return result("fixed", "fixed", f"passed after {steps} LLM step(s)", tb, transcript)
    return result("needs-human", reason if reason != "fixed" else "no-progress", detail, tb, transcript)
