"""Stage 4, compat: where every node lands on the target backend, and why a node was refused.

Writes `placement.json`. Passes when every node runs on the backend (no CPU fallback). The
failure lists each rejected node with the op and the backend's own reason, which is what the
repair planner matches on.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from bot.records import Check, Failure, FailureKind, StageFailed, StageResult
from bot.stages.base import Stage, StageContext


class CompatStage(Stage):
    name = "compat"
    # The probe places the *float* graph: it reads where it runs (runtime, SoC), never the precision
    # or per-channel choice. Keyed on the whole target, every precision repair (w8a16-all,
    # fp16-precision) re-probed the same graph; on torchcrepe that is 874 s of HTP work per attempt.
    depends_on = ("target.runtime", "target.backend", "target.soc")

    def run(self, ctx: StageContext, work: Path) -> StageResult:
        model = ctx.artifact("optimize", "onnx")
        placement = ctx.backend.probe(model, ctx.spec.target)
        (work / "placement.json").write_text(json.dumps(
            {"backend": ctx.backend.name, "total_nodes": placement.total_nodes,
             "backend_nodes": placement.backend_nodes, "fallback_nodes": placement.fallback_nodes,
             "rejected": [asdict(n) for n in placement.rejected]}, indent=2))
        (work / "probe.log").write_text(placement.log)
        checks = [Check("every node placed on the backend", placement.full,
                        f"{placement.backend_nodes}/{placement.total_nodes}",
                        detail=", ".join(f"{n.op} {n.name}: {n.reason}" for n in placement.rejected))]
        metrics = {"total_nodes": placement.total_nodes, "fallback_nodes": len(placement.fallback_nodes),
                   "rejected_ops": sorted({n.op for n in placement.rejected})}
        if not placement.full:
            raise StageFailed(Failure(self.name, FailureKind.OP_REJECTED,
                                      f"{len(placement.rejected) or len(placement.fallback_nodes)} node(s) rejected "
                                      f"by {ctx.backend.name}: {', '.join(metrics['rejected_ops']) or 'unknown'}",
                                      nodes=placement.rejected, details={"fallback_nodes": placement.fallback_nodes}),
                              checks, metrics)
        return self.result({"placement": "placement.json", "log": "probe.log"}, checks, metrics)
