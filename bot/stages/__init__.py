"""Stages in the order the default workflow runs them; one module each, one registry.

The workflow is data (`bot/pipeline/workflow.yaml` names the stages in order), the registry maps
names to classes, so a new stage is a module and a line, nothing else.
"""

from __future__ import annotations

from bot.stages.base import Stage, StageContext
from bot.stages.compat import CompatStage
from bot.stages.compile import CompileStage
from bot.stages.export import ExportStage
from bot.stages.load import LoadStage
from bot.stages.optimize import OptimizeStage
from bot.stages.package import PackageStage
from bot.stages.quantize import QuantizeStage
from bot.stages.validate import ValidateStage

REGISTRY: dict[str, type[Stage]] = {
    s.name: s
    for s in [LoadStage, ExportStage, OptimizeStage, CompatStage, QuantizeStage, CompileStage, ValidateStage, PackageStage]
}

__all__ = ["REGISTRY", "Stage", "StageContext"]
