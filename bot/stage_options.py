"""The stages' options: the knobs repairs and the agent set on a stage, besides the definition.

Each stage names its model (`Stage.Options`); the models live here, in one module that imports
nothing of the bot but pydantic, because the repair catalogue spells its knobs through them and
the catalogue is loaded where no stage may be (the GitHub-hosted PR-command job checks
`/aipc revert <repair id>` against it). A field left unset means "as the definition says" (or the
field's default); only the fields set are the options' content (`content()`), which joins the
stage's key and the manifest's `repair_state`. That content is the JSON the untyped options were
(`dict[str, dict[str, Any]]`), so the stages deployments cached before the options were typed
still hit (tests/test_stage_options_keys.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.errors import BadInput

if TYPE_CHECKING:  # only for annotations: the light PR-command job imports this without the schema
    from bot.spec.schema import Spec

#: the AIMET techniques a repair may ask for (bot.quant.aimet_engine applies them in its order)
Technique = Literal["cle", "seqmse", "adaround"]
QuantType = Literal["QUInt8", "QUInt16", "QInt8", "QInt16"]


def knob(default: Any, why: str, *, agent: bool = False, **constraints: Any) -> Any:
    """One field of a stage's options: its default, one line of why, and whether the agent's
    `set_option` tool may set it (that tool's schema is generated from these fields)."""
    return Field(default, description=why, json_schema_extra={"agent": True} if agent else None, **constraints)


class StageOptions(BaseModel):
    """The knobs of one stage. Frozen and strict: a state is changed by making a new one
    (`RepairState.with_options`), and a value of the wrong type is refused, not coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    stage: ClassVar[str] = ""

    def content(self) -> dict[str, Any]:
        """The knobs set, as JSON (what the stage's key hashes and the manifest records)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def agent_knobs(cls) -> dict[str, dict[str, Any]]:
        """knob → its JSON schema, for the knobs the agent may set."""
        props = cls.model_json_schema()["properties"]
        return {k: props[k] for k, f in cls.model_fields.items() if (f.json_schema_extra or {}).get("agent")}


class NoOptions(StageOptions):
    """A stage that no repair steers."""


class ExportOptions(StageOptions):
    stage: ClassVar[str] = "export"
    exporter: Literal["torchscript", "dynamo"] | None = knob(
        None, "the other exporter when this one fails (None: the definition's export.exporter)", agent=True)
    opset: int | None = knob(None, "a newer opset where a failing op has a standard form (None: the definition's "
                             "export.opset)", agent=True, ge=11, le=22)

    def exporter_for(self, spec: Spec) -> str:
        return self.exporter or spec.export.exporter

    def opset_for(self, spec: Spec) -> int:
        return spec.export.opset if self.opset is None else self.opset


class OptimizeOptions(StageOptions):
    stage: ClassVar[str] = "optimize"
    rewrites: list[str] = knob([], "graph rules (bot.graph.rules ids) applied in order: forms the HTP rejects "
                               "rewritten into ones it runs", agent=True)
    static_shapes: bool = knob(False, "pin every output dimension to the size the definition deploys (the HTP "
                               "takes no symbolic dimension)", agent=True)


class TensorOverride(BaseModel):
    """One activation tensor's quantization type (mixed precision)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    quant_type: QuantType


class QuantizeOptions(StageOptions):
    stage: ClassVar[str] = "quantize"
    precision: Literal["w8a8", "w8a16", "fp16"] | None = knob(
        None, "another precision than the definition's when 8-bit activations lose the signal (None: "
        "target.precision)", agent=True)
    per_channel: bool | None = knob(None, "per-channel weight scales, which trained weights need (None: the "
                                    "definition's quantization.per_channel)", agent=True)
    calibrate_method: Literal["minmax", "entropy", "percentile", "mse"] | None = knob(
        None, "how activation ranges are set; percentile ignores the outliers that stretch them (None: the "
        "definition's)", agent=True)
    overrides: dict[str, TensorOverride] = knob({}, "tensor → its quantization type: the layers localization "
                                                "blames in 16 bits (mixed precision)")
    float_tensors: list[str] = knob([], "tensors left float, their producers run in fp16 on the HTP (as "
                                    "quantization.overrides fp16 does): where 16 bits are not enough")
    min_real_range: float | None = knob(None, "the smallest activation range kept: the QNN config's 1e-4 zeroes "
                                        "smaller tensors, a collapsed output (None: the config's)")
    weight_type: Literal["QUInt8", "QInt8"] = knob("QUInt8", "QInt8 (signed symmetric) lets onnxruntime widen a "
                                                   "weight scale until its bias fits int32")
    per_tensor_weights: list[str] = knob([], "weights quantized per tensor, because onnxruntime refuses their "
                                         "per-axis scale on a tensor they feed")
    engine: Literal["onnxruntime", "aimet"] = knob("onnxruntime", "aimet: Qualcomm's techniques and HTP "
                                                   "simulation, once onnxruntime's knobs are spent")
    techniques: list[Technique] = knob([], "the AIMET techniques (AIMET applies them in its own order)")
    adaround_iterations: int = knob(1000, "AdaRound's steps (AIMET's default is 10000; 1000 keeps a CNN within "
                                    "minutes on 2 cores)", gt=0)
    seqmse_candidates: int = knob(20, "SeqMSE's candidate ranges per layer (AIMET's default)", gt=0)
    bias_correction: Literal["off", "analytic", "empirical"] = knob(
        "off", "take each Conv's weight-rounding mean shift off its bias (analytic: ΔW·E[x]; empirical: then "
        "Conv by Conv on the QDQ graph's own outputs, ~2 s a Conv): 0.980 → 0.999 on a trained MobileNetV2's "
        "symmetric weights", agent=True)

    def precision_for(self, spec: Spec) -> str:
        return self.precision or spec.target.precision

    def per_channel_for(self, spec: Spec) -> bool:
        return spec.per_channel if self.per_channel is None else self.per_channel

    def calibrate_method_for(self, spec: Spec) -> str:
        return self.calibrate_method or spec.calibrate_method


#: the stages that take options, by name (tests/test_stage_options_keys.py checks each stage's `Options` is its entry)
BY_STAGE: dict[str, type[StageOptions]] = {o.stage: o for o in (ExportOptions, OptimizeOptions, QuantizeOptions)}


def parse_options(options: Mapping[str, StageOptions | Mapping[str, Any]] | None,
                  where: str = "options") -> dict[str, StageOptions]:
    """Stage → its typed options, from typed options or their content (a manifest's `repair_state`)."""
    out: dict[str, StageOptions] = {}
    for stage, knobs in (options or {}).items():
        cls = BY_STAGE.get(stage)
        if cls is None:
            raise BadInput(f"{where}.{stage}: no stage of that name takes options; those that do: {', '.join(BY_STAGE)}")
        if isinstance(knobs, StageOptions):
            if not isinstance(knobs, cls):
                raise BadInput(f"{where}.{stage}: {type(knobs).__name__} is not {cls.__name__}")
            out[stage] = knobs
            continue
        out[stage] = validated(cls, dict(knobs), where)
    return out


def validated(cls: type[StageOptions], content: dict[str, Any], where: str = "options") -> StageOptions:
    """`cls` from its content, a wrong knob or value refused with its field path (`BadInput`)."""
    try:
        return cls.model_validate(content)
    except ValidationError as e:
        err = e.errors()[0]
        path = ".".join(str(p) for p in err["loc"])
        raise BadInput(f"{where}.{cls.stage}.{path}: {err['msg']} (got {err.get('input')!r})") from None
