"""The LLM agent against a real OpenAI-compatible server on loopback, through the real `openai` client.

Every scenario must end as designed — fixed, refused, retried, timed out, out of budget — with
tokens and cost recorded. One scenario goes through the real pipeline on a tiny model whose
failure no rule knows (`torch.linalg.inv` cannot be exported); the others use a fast fake rerun.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from openai import OpenAI

from bot.agent.llm import AgentRequest, configured, run_agent
from bot.pipeline import RunOutcome
from bot.records import Failure, FailureKind, StageResult
from bot.repair.state import RepairState
from bot.spec import load_spec
from bot.spec.schema import LimitsSpec
from fake_openai import FakeOpenAI, Sleep, Status, text, tool_call

MODEL_PY = textwrap.dedent('''\
    import torch
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            return torch.linalg.inv(y[:, :, :4, :4] + 4 * torch.eye(4))


    def build():
        torch.manual_seed(0)
        return Net().eval()
    ''')
AIPC = "name: tiny_inv\nentry: model.py:build\ninputs:\n  - name: x\n    shape: [1, 3, 8, 8]\ntarget:\n  precision: fp16\n"
FIX = textwrap.dedent('''\
    --- a/model.py
    +++ b/model.py
    @@ -10,7 +10,7 @@
         def forward(self, x):
             y = self.conv(x)
    -        return torch.linalg.inv(y[:, :, :4, :4] + 4 * torch.eye(4))
    +        return torch.relu(y[:, :, :4, :4])
     
     
     def build():
    ''')
EXPORT_FAILURE = Failure("export", FailureKind.EXPORT_ERROR,
                         "torch.onnx.export (torchscript, opset 17) failed: UnsupportedOperatorError: "
                         "Exporting the operator 'aten::linalg_inv' to ONNX opset version 17 is not supported")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "models" / "tiny_inv"
    d.mkdir(parents=True)
    (d / "model.py").write_text(MODEL_PY)
    (d / "aipc.yaml").write_text(AIPC)
    return d


def client_for(srv: FakeOpenAI, retries: int = 0, timeout: float = 10.0) -> OpenAI:
    return OpenAI(api_key="sk-test", base_url=srv.base_url, max_retries=retries, timeout=timeout)


class FakeRerun:
    """Passes once the state carries a patch (or `passes_when` says so); otherwise the same failure."""

    def __init__(self, out: Path, passes_when=lambda st: bool(st.patches), failure=EXPORT_FAILURE):
        self.out, self.passes_when, self.failure, self.states = out, passes_when, failure, []

    def __call__(self, state: RepairState) -> RunOutcome:
        self.states.append(state)
        if self.passes_when(state):
            return RunOutcome([StageResult("export", True)], None, self.out)
        return RunOutcome([StageResult("export", False, failure=self.failure)], self.failure, self.out)


def request(model_dir: Path, out: Path, rerun, **limits) -> AgentRequest:
    spec, folder = load_spec(model_dir)
    lim = LimitsSpec(**{"llm_budget_usd": 1.0, "llm_steps": 8, **limits})
    return AgentRequest(failure=EXPORT_FAILURE, state=RepairState(), model_dir=folder, out_dir=out, spec=spec,
                        rerun=rerun, limits=lim)


def assert_accounted(res, calls: int):
    assert res.usage["calls"] == calls
    if calls:
        assert res.usage["tokens_in"] > 0 and res.usage["tokens_out"] > 0 and res.usage["usd"] > 0
    assert res.usage["seconds"] >= 0


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for k in ("AIPC_LLM_API_KEY", "OPENAI_API_KEY", "AIPC_LLM_BASE_URL", "OPENAI_BASE_URL", "AIPC_LLM_TIMEOUT",
              "AIPC_LLM_MAX_RETRIES"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AIPC_LLM_MODEL", "gpt-4o")  # a priced model: $2.50 / $10 per 1M tokens


def test_real_pipeline_repair_of_an_unknown_failure(model_dir, tmp_path):
    from bot import backends
    from bot.pipeline import Pipeline
    from bot.repair.patches import working_copy

    out = tmp_path / "deploy"
    spec, _ = load_spec(model_dir)
    backend = backends.for_target(spec.target)
    runs = []

    def rerun(state: RepairState) -> RunOutcome:
        wc = working_copy(model_dir, state.patches, tmp_path / f"wc{len(runs)}")
        runs.append(state)
        return Pipeline(load_spec(wc)[0], wc, out, backend).run(options=state.options)

    first = rerun(RepairState())
    assert not first.passed and "linalg_inv" in first.failure.message
    req = request(model_dir, out, rerun)
    req.failure = first.failure
    script = [tool_call("read_skill", {"name": "pytorch-onnx-export"}),
              tool_call("read_file", {"path": "model.py"}),
              tool_call("propose_patch", {"diff": FIX}),
              tool_call("rerun")]
    with FakeOpenAI(script) as srv:
        res = run_agent(req, client=client_for(srv))
    assert res.outcome == "fixed" and res.reason == "fixed", res.transcript
    assert res.best.passed and len(res.state.patches) == 1
    assert "## Exit criteria" in srv.tool_results(1)[-1]  # the skill body, disclosed on request
    assert "pytorch-onnx-export" in srv.requests[0]["body"]["messages"][0]["content"]  # names up front
    assert "## Exit criteria" not in srv.requests[0]["body"]["messages"][0]["content"]  # bodies only on request
    assert "linalg.inv" in srv.tool_results(2)[-1]  # the model saw the file before patching
    assert "patch accepted" in srv.tool_results(3)[-1]
    assert srv.requests[0]["auth"] == "Bearer sk-test"
    assert [t["tool"] for t in res.transcript if t["tool"] != "llm"] == ["read_skill", "read_file", "propose_patch", "rerun"]
    assert_accounted(res, 4)
    assert res.usage["tokens_in"] == 4 * 1200 and res.usage["tokens_out"] == 4 * 80
    assert res.usage["usd"] == pytest.approx(4 * (1200 * 2.5 + 80 * 10) / 1e6)
    assert "inverse" not in (model_dir / "model.py").read_text() and "linalg.inv" in (model_dir / "model.py").read_text()


def test_malformed_tool_arguments_are_sent_back_and_the_loop_continues(model_dir, tmp_path):
    rerun = FakeRerun(tmp_path)
    script = [tool_call("read_file", raw='{"path": model.py'),
              tool_call("read_file", raw='["model.py"]'),
              tool_call("propose_patch", {"diff": FIX}),
              tool_call("rerun")]
    with FakeOpenAI(script) as srv:
        res = run_agent(request(model_dir, tmp_path, rerun), client=client_for(srv))
    assert "not a valid JSON object" in srv.tool_results(1)[-1]
    assert "must be a JSON object" in srv.tool_results(2)[-1]
    assert res.outcome == "fixed"
    assert_accounted(res, 4)


def test_a_diff_or_read_that_escapes_the_model_folder_is_refused(model_dir, tmp_path):
    outside = tmp_path / "secret.py"
    outside.write_text("x = 1\n")
    escape = "--- a/../../secret.py\n+++ b/../../secret.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    absolute = f"--- {outside}\n+++ {outside}\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    script = [tool_call("propose_patch", {"diff": escape}),
              tool_call("propose_patch", {"diff": absolute}),
              tool_call("read_file", {"path": "../../secret.py"}),
              tool_call("give_up", {"reason": "the only fix is outside the model folder"})]
    rerun = FakeRerun(tmp_path)
    with FakeOpenAI(script) as srv:
        res = run_agent(request(model_dir, tmp_path, rerun), client=client_for(srv))
    for i in (1, 2, 3):
        assert srv.tool_results(i)[-1].startswith("error:"), srv.tool_results(i)
    assert "leaves the model folder" in srv.tool_results(1)[-1]
    assert "absolute path" in srv.tool_results(2)[-1]
    assert outside.read_text() == "x = 1\n" and not rerun.states
    assert res.outcome == "needs-human" and res.reason == "gave-up" and res.state.patches == []
    assert_accounted(res, 4)


def test_429_is_retried_by_the_client_and_the_run_goes_on(model_dir, tmp_path):
    script = [Status(429, {"retry-after": "0", "retry-after-ms": "1"}),
              Status(500, {"retry-after-ms": "1"}),
              tool_call("propose_patch", {"diff": FIX}),
              tool_call("rerun")]
    with FakeOpenAI(script) as srv:
        res = run_agent(request(model_dir, tmp_path, FakeRerun(tmp_path)), client=client_for(srv, retries=2))
    assert res.outcome == "fixed"
    assert len(srv.requests) == 4  # two scripted errors absorbed by the client's retries
    assert_accounted(res, 2)


def test_500_after_all_retries_ends_needs_human(model_dir, tmp_path):
    script = [tool_call("read_file", {"path": "model.py"})] + [Status(500, {"retry-after-ms": "1"})] * 3
    with FakeOpenAI(script) as srv:
        res = run_agent(request(model_dir, tmp_path, FakeRerun(tmp_path)), client=client_for(srv, retries=2))
    assert res.outcome == "needs-human" and res.reason == "api-error"
    assert "500" in res.detail and len(srv.requests) == 4
    assert res.usage["errors"] == 1
    assert_accounted(res, 1)  # the first, successful call is still accounted


def test_timeout_ends_needs_human(model_dir, tmp_path):
    script = [Sleep(1.5), Sleep(1.5)]
    with FakeOpenAI(script) as srv:
        res = run_agent(request(model_dir, tmp_path, FakeRerun(tmp_path)),
                        client=client_for(srv, retries=1, timeout=0.3))
    assert res.outcome == "needs-human" and res.reason == "api-error"
    assert "Timeout" in res.detail and len(srv.requests) == 2
    assert_accounted(res, 0)


def test_budget_is_never_overspent(model_dir, tmp_path):
    script = [tool_call("read_file", {"path": "model.py"}, prompt=4000, out=500) for _ in range(10)]
    with FakeOpenAI(script) as srv:
        res = run_agent(request(model_dir, tmp_path, FakeRerun(tmp_path), llm_budget_usd=0.10),
                        client=client_for(srv))
    assert res.outcome == "needs-human" and res.reason == "budget"
    assert res.usage["usd"] <= 0.10
    per_call = (4000 * 2.5 + 500 * 10) / 1e6
    assert res.usage["usd"] == pytest.approx(res.usage["calls"] * per_call)
    assert 1 <= res.usage["calls"] < 10 and len(srv.requests) == res.usage["calls"]


def test_same_failure_again_is_no_progress_and_keeps_best(model_dir, tmp_path):
    script = [tool_call("set_option", {"stage": "export", "key": "opset", "value": 18}),
              tool_call("rerun"),
              tool_call("set_option", {"stage": "export", "key": "exporter", "value": "dynamo"}),
              tool_call("rerun"),
              tool_call("read_file", {"path": "model.py"})]
    rerun = FakeRerun(tmp_path, passes_when=lambda st: False)
    with FakeOpenAI(script) as srv:
        res = run_agent(request(model_dir, tmp_path, rerun), client=client_for(srv))
    # the first rerun already reproduced the original failure: warned; the second: stopped
    assert res.outcome == "needs-human" and res.reason == "no-progress"
    assert len(rerun.states) == 2 and "NO PROGRESS" in srv.tool_results(2)[-1] and len(srv.requests) == 4
    assert res.best is not None and res.state.options["export"]["opset"] == 18  # best partial kept
    assert_accounted(res, 4)


def test_step_bound_and_text_only_replies(model_dir, tmp_path):
    with FakeOpenAI([tool_call("list_files")] * 5) as srv:
        res = run_agent(request(model_dir, tmp_path, FakeRerun(tmp_path), llm_steps=3), client=client_for(srv))
    assert res.reason == "steps" and res.usage["calls"] == 3 and "model.py" in srv.tool_results(1)[-1]
    with FakeOpenAI([text("I think the exporter is wrong."), text("Yes.")]) as srv:
        res = run_agent(request(model_dir, tmp_path, FakeRerun(tmp_path)), client=client_for(srv))
    assert res.reason == "no-progress" and res.usage["calls"] == 2


def test_no_key_means_rule_planner_only(model_dir, tmp_path):
    ok, why = configured()
    assert not ok and "no API key" in why and "rule planner only" in why
    res = run_agent(request(model_dir, tmp_path, FakeRerun(tmp_path)))
    assert res.outcome == "disabled" and res.usage["calls"] == 0


def test_key_from_env_and_a_zero_budget_disables(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("AIPC_LLM_API_KEY", "sk-x")
    monkeypatch.setenv("AIPC_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    ok, why = configured()
    assert ok and "gpt-4o" in why and "127.0.0.1:9" in why
    res = run_agent(request(model_dir, tmp_path, FakeRerun(tmp_path), llm_budget_usd=0))
    assert res.outcome == "disabled" and "0" in res.detail
