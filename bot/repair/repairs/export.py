"""Export-level repairs: the other exporter, a newer opset, static shapes."""

from __future__ import annotations

import re

from bot.records import FailureKind
from bot.repair.base import Repair
from bot.stage_options import ExportOptions, OptimizeOptions

EXPORTERS = ("torchscript", "dynamo")


def _switch_exporter(failure, state, ctx):
    current = state.opts(ExportOptions).exporter_for(ctx["spec"])
    if failure.stage != "export" and failure.kind != FailureKind.OP_REJECTED:
        return None
    other = EXPORTERS[1 - EXPORTERS.index(current)]
    return state.with_options(ExportOptions, exporter=other)


def _raise_opset(failure, state, ctx):
    current = state.opts(ExportOptions).opset_for(ctx["spec"])
    text = f"{failure.message}\n{failure.log}"
    if failure.stage == "export" and not re.search(r"opset|not supported in|Unsupported", text, re.I):
        return None
    if current >= 20:
        return None
    return state.with_options(ExportOptions, opset=max(current + 1, 18))


def _static_shapes(failure, state, ctx):
    if state.opts(OptimizeOptions).static_shapes:
        return None
    return state.with_options(OptimizeOptions, static_shapes=True)


REPAIRS: tuple[Repair, ...] = (
    Repair("switch-exporter", "export", (FailureKind.EXPORT_ERROR, FailureKind.OP_REJECTED),
           "export again with the other exporter (TorchScript ↔ torch.export/dynamo)", _switch_exporter),
    Repair("raise-opset", "export", (FailureKind.EXPORT_ERROR,),
           "export at a newer opset (≥ 18), where the failing op has a standard form", _raise_opset),
    Repair("static-shapes", "export", (FailureKind.DYNAMIC_SHAPE,),
           "fix every symbolic dimension to the size the definition deploys", _static_shapes),
)
