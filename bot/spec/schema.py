"""Schema of `aipc.yaml`, validated with pydantic so every error carries its field path.

Defaults are chosen so that a definition with only `entry` and `inputs` deploys: w8a16 on
SM8650 (HTP v75), thresholds from the AIPC report (cosine ≥ 0.99 float, ≥ 0.95 quantized).

After changing this file, regenerate the committed JSON Schema (tests/test_json_schema.py checks it):
`python -m bot.cli schema > schema/aipc.schema.json`; a new custom validator wants its JSON Schema
counterpart in bot/spec/json_schema.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from bot.adapters.transformers import expand
from bot.targets import DEFAULT_SOC, SOCS

Precision = Literal["w8a8", "w8a16", "fp16"]
RequestedPrecision = Literal["w8a8", "w8a16", "fp16", "auto"]  # auto: the cheapest that meets the bar
CalibrateMethod = Literal["minmax", "entropy", "percentile", "mse"]
TensorPrecision = Literal["int16", "fp16"]
DType = Literal["float32", "float16", "int32", "int64", "uint8", "bool"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")
    shape: list[int]
    dtype: DType = "float32"
    range: tuple[float, float] = (0.0, 1.0)
    files: list[str] = Field(default_factory=list, description=".npy sample files, one per sample")
    layout: str = Field(default="", description="e.g. NCHW; recorded in the runtime interface")

    @field_validator("shape")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any((not isinstance(d, int)) or d <= 0 for d in v):
            raise ValueError("expected a list of positive integers")
        return v

    @field_validator("range")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] > v[1]:
            raise ValueError("expected [low, high] with low <= high")
        return v


class CalibrationSpec(Strict):
    samples: int = Field(default=8, ge=1, le=4096)
    generator: str | None = Field(default=None, description="file.py:function yielding {input: array}")
    files: list[str] = Field(default_factory=list, description=".npz files, one sample each")
    method: CalibrateMethod | None = Field(default=None, description="older spelling of quantization.calibrate_method")
    seed: int = Field(default=1, ge=0, description="numpy seeds are non-negative")


class TargetSpec(Strict):
    runtime: Literal["qnn", "snpe"] = "qnn"
    backend: Literal["htp"] = "htp"
    soc: str = DEFAULT_SOC
    precision: RequestedPrecision = Field(
        default="w8a16", description="auto: start at w8a8 and climb (w8a16, fp16) only as far as the bar needs")
    engine: str = Field(default="auto", description="backend implementation: auto, ort-qnn, qairt-sdk, adb")
    per_channel: bool | None = Field(default=None, description="older spelling of quantization.per_channel")
    _requested: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _auto_starts_cheapest(self) -> "TargetSpec":
        # the stages deploy one concrete precision; "auto" is where the search starts, remembered
        if self.precision == "auto":
            self._requested, self.precision = "auto", "w8a8"
        return self

    @property
    def requested_precision(self) -> str:
        """What the definition asked for ('auto' or a precision), as opposed to what is deployed."""
        return self._requested or self.precision

    @field_validator("soc")
    @classmethod
    def _known_soc(cls, v: str) -> str:
        if v.upper() not in SOCS:
            raise ValueError(f"unknown SoC {v!r}; known: {', '.join(sorted(SOCS))}")
        return v.upper()


class QuantizationSpec(Strict):
    """How the integer graph is made. Defaults fit trained weights: per-channel weight scales
    (per-tensor scales lose a trained MobileNetV2 at w8a8, cosine 0.41 vs 0.968) on every op kind
    the HTP takes them for, and the range setting measured best (docs/quantization.md)."""

    per_channel: bool | None = Field(
        default=None, description="per-channel weight scales for Conv, ConvTranspose, Gemm and MatMul weights "
                                  "(default true; false: one scale per weight tensor)")
    calibrate_method: CalibrateMethod | None = Field(
        default=None, description="activation range setting: minmax, entropy, percentile (99.999 %), mse "
                                  "(the clip range with the least squared error)")
    overrides: dict[str, TensorPrecision] = Field(
        default_factory=dict, description="tensor name (in the optimized graph) → int16 or fp16, kept whatever "
                                          "the precision")
    bounded_outputs_16bit: bool = Field(
        default=True, description="a trailing Softmax whose values use fewer than 16 of its 256 8-bit steps gets "
                                  "a 16-bit output at w8a8 (a 1000-way Softmax of an untrained or uncertain "
                                  "classifier rounds to all zeros in 8 bits)")


DEFAULT_PER_CHANNEL = True
DEFAULT_CALIBRATE_METHOD = "minmax"


class OutputCheck(Strict):
    cosine_min: float | None = Field(default=None, ge=-1, le=1)
    sqnr_min_db: float | None = None
    psnr_min_db: float | None = None
    max_abs_max: float | None = Field(default=None, ge=0)
    topk: int | None = Field(default=None, ge=1, description="classifier: compare top-k sets")
    topk_agreement_min: float = Field(default=0.8, ge=0, le=1)
    parts: dict[str, tuple[int, int]] = Field(
        default_factory=dict, description="check slices [lo, hi) along `axis` separately, e.g. boxes/scores")
    axis: int = 1

    @field_validator("parts")
    @classmethod
    def _ranges(cls, v: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        for name, (lo, hi) in v.items():
            if not 0 <= lo < hi:
                raise ValueError(f"part {name!r}: expected [lo, hi) with 0 <= lo < hi")
        return v


class ValidationSpec(Strict):
    samples: int = Field(default=2, ge=1, le=256)
    seed: int = Field(default=0, ge=0, description="numpy seeds are non-negative")
    outputs: dict[str, OutputCheck] = Field(default_factory=dict, description="per output; '*' for all")


class ExportSpec(Strict):
    exporter: Literal["torchscript", "dynamo"] = "torchscript"
    opset: int = Field(default=17, ge=11, le=22)


class LimitsSpec(Strict):
    repair_attempts: int = Field(default=6, ge=0, le=50)
    patience: int = Field(default=3, ge=1, le=50,
                          description="attempts in a row without progress before the repair loop stops "
                                      "(a precision not yet tried still gets its attempt)")
    order: Literal["gain", "catalogue"] = Field(
        default="gain", description="gain: quantization repairs in order of where the error is (weights or "
                                    "activations, measured on the CPU QDQ simulation); catalogue: fixed order")
    repair_order: list[str] = Field(default_factory=list,
                                    description="repair ids to try first, in this order, where they apply")
    screen: int = Field(default=3, ge=0, le=10,
                        description="quantization candidates ranked on the CPU QDQ simulation before the best "
                                    "one is compiled and validated on the device (0 or 1: off)")
    llm_budget_usd: float = Field(default=1.0, ge=0, description="0 turns the LLM agent off")
    llm_steps: int = Field(default=12, ge=0)
    wall_seconds: float = Field(default=1800, gt=0)
    stage_seconds: float = Field(default=900, gt=0, description="one stage's time limit: a hung forward, export "
                                                                "or HTP preparation is stopped and named")
    data_gb: float = Field(default=4.0, gt=0, description="memory the samples, goldens and calibration set may "
                                                          "take (also at most half the free memory)")


class LLMSpec(Strict):
    """The LLM agent's connection; the key itself never lives in the definition, only the
    name of the environment variable that holds it."""

    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    timeout_seconds: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0, le=10)
    max_output_tokens: int | None = Field(default=None, ge=256)
    price_in_per_mtok: float | None = Field(default=None, ge=0)
    price_out_per_mtok: float | None = Field(default=None, ge=0)


# file.py:function, relative to the model folder; or an adapter's reference (bot.adapters: `transformers:step`)
ENTRY_POINT = r"^(?:[^:]+\.py|transformers):[A-Za-z_][A-Za-z0-9_]*$"


class DataSpec(Strict):
    """Real inputs: files in the model folder turned into input arrays by the model's own `preprocess`,
    the same function for calibration, validation and the packaged `run.py`."""

    preprocess: str = Field(pattern=ENTRY_POINT,
                            description="file.py:function(path) -> {input name: array of the declared shape}")
    calibration: list[str] = Field(default_factory=list, description="globs relative to the model folder")
    validation: list[str] = Field(default_factory=list, description="globs; never the same files as calibration")
    make: str | None = Field(default=None, pattern=ENTRY_POINT,
                             description="file.py:function(folder, seed): writes the data files when a glob "
                                         "matches nothing (offline, from the seed)")
    seed: int = Field(default=0, ge=0, description="numpy seeds are non-negative")
    labels: str | None = Field(default=None, description="JSON file {file name: label/answer}")

    @model_validator(mode="after")
    def _some_files(self) -> "DataSpec":
        if not self.calibration and not self.validation:
            raise ValueError("give 'calibration' and/or 'validation' globs")
        return self


class _TaskMetric(Strict):
    name: str | None = Field(default=None, description="how the report names this metric")
    key: str | None = Field(default=None, description="one field of a dict-valued answer")

    @property
    def label(self) -> str:
        return self.name or (f"{self.kind}:{self.key}" if self.key else self.kind)


class LabelMetric(_TaskMetric):
    """Answer = one label per sample (class id, word, yes/no): share of samples where deployed == FP32."""

    kind: Literal["label"]
    min: float = Field(default=0.99, ge=0, le=1)
    label_drop_max: float | None = Field(default=None, ge=0, le=1, description="with labels: accuracy may "
                                                                               "drop at most this much")


class TopkMetric(_TaskMetric):
    """Answer = a score vector: share of samples whose FP32 top-1 is within the deployed top-k."""

    kind: Literal["topk"]
    k: int = Field(default=5, ge=1)
    min: float = Field(default=0.99, ge=0, le=1)
    label_drop_max: float | None = Field(default=None, ge=0, le=1)


class SequenceMetric(_TaskMetric):
    """Answer = a string or a list (tokens, characters after a CTC decode): exact-match share,
    and the character (element) error rate."""

    kind: Literal["sequence"]
    min: float = Field(default=0.99, ge=0, le=1)
    cer_max: float | None = Field(default=None, ge=0, description="bound on the error rate against FP32")
    label_drop_max: float | None = Field(default=None, ge=0, le=1)


class DetectionsMetric(_TaskMetric):
    """Answer = a list of {box: [x1, y1, x2, y2], score, label}: deployed boxes matched to FP32's
    one to one at IoU >= `iou` (same label): recall, precision, and how much matched scores move."""

    kind: Literal["detections"]
    iou: float = Field(default=0.5, gt=0, le=1)
    recall_min: float = Field(default=0.95, ge=0, le=1)
    precision_min: float = Field(default=0.95, ge=0, le=1)
    score_change_max: float | None = Field(default=None, ge=0, description="bound on the mean |score change|")
    same_label: bool = True


class DecisionsMetric(_TaskMetric):
    """Answer = probabilities per frame (voice activity, on/off): share of frames decided the same
    way at `threshold`."""

    kind: Literal["decisions"]
    threshold: float = 0.5
    min: float = Field(default=0.99, ge=0, le=1)
    label_drop_max: float | None = Field(default=None, ge=0, le=1)


class ErrorMetric(_TaskMetric):
    """Answer = numbers (pitch per frame, a depth map): share of elements with |deployed - FP32| <= max,
    in `unit`; NaN in FP32 means "not applicable" (an unvoiced frame) and is left out."""

    kind: Literal["error"]
    max: float = Field(ge=0)
    share_min: float = Field(default=0.99, ge=0, le=1)
    unit: str = ""
    compare: Literal["absolute", "cents"] = Field(
        default="absolute", description="cents: answers are frequencies, the error is 1200·|log2(deployed/FP32)|")


class RankingMetric(_TaskMetric):
    """Answer = an embedding: each validation sample's nearest neighbour among the others is
    unchanged (share), plus the Spearman correlation of all pairwise similarities."""

    kind: Literal["ranking"]
    min: float = Field(default=1.0, ge=0, le=1)
    spearman_min: float | None = Field(default=None, ge=-1, le=1)
    similarity: Literal["cosine", "dot", "euclidean"] = "cosine"


class CustomMetric(_TaskMetric):
    """`function(fp32_answers, deployed_answers) -> float`, judged against `min` and/or `max`."""

    kind: Literal["custom"]
    function: str = Field(pattern=ENTRY_POINT)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bound(self) -> "CustomMetric":
        if self.min is None and self.max is None:
            raise ValueError("give 'min' and/or 'max' for a custom metric")
        return self


TaskMetric = Annotated[Union[LabelMetric, TopkMetric, SequenceMetric, DetectionsMetric, DecisionsMetric,
                             ErrorMetric, RankingMetric, CustomMetric], Field(discriminator="kind")]


class TaskSpec(Strict):
    """Checks on what the model is for: `postprocess` turns outputs into the task's answer, applied
    to FP32 and deployed outputs alike; each metric compares the two on every validation sample."""

    postprocess: str | None = Field(default=None, pattern=ENTRY_POINT,
                                    description="file.py:function(outputs) -> answer; without it the answer "
                                                "is the only output (or the dict of outputs)")
    metrics: list[TaskMetric] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "TaskSpec":
        names = [m.label for m in self.metrics]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"metrics: names must be unique, {dup} repeat (give each a 'name')")
        return self


PART_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"


def _entry_form(v: str | None) -> str | None:
    """An entry point is `file.py:function` (checked on the field, so the error names `entry`)."""
    if v and ":" not in v:
        raise ValueError("expected 'file.py:function'")
    return v


class VariantSpec(Strict):
    """One static size of a dynamic model: every input named here gets this shape."""

    name: str = Field(pattern=PART_NAME)
    shapes: dict[str, list[int]] = Field(description="input name → static shape for this variant")
    calibration: CalibrationSpec | None = Field(default=None, description="replaces the graph's calibration")

    @field_validator("shapes")
    @classmethod
    def _positive(cls, v: dict[str, list[int]]) -> dict[str, list[int]]:
        for name, shape in v.items():
            if not shape or any((not isinstance(d, int)) or d <= 0 for d in shape):
                raise ValueError(f"{name}: expected a list of positive integers")
        return v


class GraphSpec(Strict):
    """One graph of a multi-graph model (encoder, decoder step, text encoder, head …)."""

    name: str = Field(pattern=PART_NAME)
    entry: str | None = Field(default=None, description="file.py:function returning this graph's torch.nn.Module")
    onnx: str | None = None
    inputs: list[InputSpec] = Field(min_length=1)
    outputs: list[str] = Field(default_factory=list)
    calibration: CalibrationSpec | None = None
    validation: ValidationSpec | None = None
    export: ExportSpec | None = None
    precision: Precision | None = Field(default=None, description="overrides target.precision for this graph")
    quantization: QuantizationSpec | None = Field(default=None, description="replaces the top-level quantization "
                                                                            "section for this graph")
    repairs: list[str] = Field(default_factory=list)
    variants: list[VariantSpec] = Field(default_factory=list)

    @field_validator("entry")
    @classmethod
    def _entry_form(cls, v: str | None) -> str | None:
        return _entry_form(v)

    @model_validator(mode="after")
    def _one_source(self) -> "GraphSpec":
        if bool(self.entry) == bool(self.onnx):
            raise ValueError("give exactly one of 'entry' or 'onnx'")
        return self


class CacheSpec(Strict):
    input: str = Field(description="step-graph input holding the cache, [.., max_length, ..]")
    output: str = Field(description="step-graph output holding this position's new entry (size 1 on `axis`)")
    axis: int = Field(default=2, ge=0)


class DecodeSpec(Strict):
    """Autoregressive decoding on the compiled graphs: a KV-cache step graph with static shapes."""

    step: str = Field(description="the graph run once per token")
    encoder: str | None = Field(default=None, description="a graph run once; its outputs feed the step graph by name")
    prefill: str | None = Field(default=None, description="a graph run once on the prompt padded to its static "
                                                          "length: its `logits_output` holds every position's "
                                                          "logits, its cache outputs every position's entries")
    token_input: str = "token"
    position_input: str | None = "position"
    mask_input: str | None = "mask"
    mask_value: float = Field(default=-40.0, description="additive mask for cache slots not yet written")
    logits_output: str = "logits"
    cache: list[CacheSpec] = Field(min_length=1)
    prompts: list[list[int]] = Field(min_length=1, description="token prompts (the first token is the start token)")
    max_new_tokens: int | None = Field(default=None, ge=1)
    eos: int | None = None
    reference: str = Field(description="file.py:function(prompt, max_new_tokens, encoder_inputs) → PyTorch greedy tokens")
    frontend: str | None = Field(default=None, description="file.py:function, numpy only: raw input → encoder inputs "
                                                           "(e.g. waveform → log-mel), run on the host")
    samples: str | None = Field(default=None, description="file.py:function(n) → raw inputs for the frontend/encoder")
    sample_count: int = Field(default=2, ge=1, le=64, description="how many raw inputs `samples` is asked for")
    min_token_agreement: float = Field(default=1.0, ge=0, le=1)


class ChainSpec(Strict):
    """Graphs run in order on the target, outputs feeding later inputs by name, checked against PyTorch."""

    graphs: list[str] = Field(min_length=1)
    reference: str = Field(description="file.py:function(**inputs) → the final outputs in PyTorch")
    outputs: list[str] = Field(min_length=1)
    samples: int = Field(default=2, ge=1, le=32)
    cosine_min: float | None = Field(default=None, ge=-1, le=1)
    ranking: bool = Field(default=False, description="also require the similarity ranking of the first two "
                                                     "outputs (e.g. text vs image embeddings) over the samples "
                                                     "to be unchanged")


class TransformersSpec(Strict):
    """A Hugging Face `transformers` model built from a config with seeded random weights (no hub):
    the bot lays out its graphs (bot.adapters.transformers), so no model.py is needed."""

    model_class: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$",
                             description="the transformers class, e.g. LlamaForCausalLM, BertForTokenClassification")
    config: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the class's config")
    seed: int = Field(default=0, description="torch.manual_seed before the weights are initialised")
    weights: str | None = Field(default=None, pattern=r"^[^:]+\.(pt|pth|safetensors)$",
                                description="a state dict in the model folder (your trained weights) loaded over "
                                            "the seeded ones")
    max_length: int = Field(default=32, ge=2, le=4096, description="causal LM: static cache length (tokens)")
    prefill_length: int | None = Field(default=None, ge=1, description="causal LM: also build a prefill graph that "
                                                                       "takes the prompt (padded to this many tokens) "
                                                                       "in one run")
    mask_value: float = Field(default=-1000.0, lt=0, description="causal LM: additive mask of unwritten cache slots")
    cache_range: float = Field(default=8.0, gt=0, description="causal LM: value range of random cache samples")
    prompts: list[list[int]] = Field(default_factory=list, description="causal LM: token prompts (default: 4 seeded)")
    max_new_tokens: int | None = Field(default=None, ge=1)
    min_token_agreement: float | None = Field(default=None, ge=0, le=1)
    calibration_samples: int = Field(default=16, ge=1, le=256)
    sample_count: int = Field(default=2, ge=1, le=64, description="speech models: utterances the decode check runs")
    sequence_length: int = Field(default=16, ge=1, description="encoders: static number of tokens")
    features: str | None = Field(default=None, pattern=ENTRY_POINT,
                                 description="speech models: file.py:function(n) → n log-mel feature arrays "
                                             "[1, num_mel_bins, 2 × max_source_positions]")


class Spec(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    entry: str | None = Field(default=None, description="file.py:function returning a torch.nn.Module")
    onnx: str | None = Field(default=None, description="an ONNX file instead of a PyTorch entry point")
    inputs: list[InputSpec] = Field(default_factory=list, description="required unless 'graphs' is given")
    outputs: list[str] = Field(default_factory=list, description="output names, in order")
    calibration: CalibrationSpec = Field(default_factory=CalibrationSpec)
    target: TargetSpec = Field(default_factory=TargetSpec)
    quantization: QuantizationSpec = Field(default_factory=QuantizationSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    llm: LLMSpec = Field(default_factory=LLMSpec)
    repairs: list[str] = Field(default_factory=list, description="repairs to apply up front, by id")
    # several static sizes, several graphs, decoding and chains: expanded by bot.spec.expand, checked together by bot.compose
    variants: list[VariantSpec] = Field(default_factory=list, description="static sizes of a dynamic model")
    graphs: list[GraphSpec] = Field(default_factory=list, description="graphs deployed together")
    decode: DecodeSpec | None = None
    chain: ChainSpec | None = None
    data: DataSpec | None = Field(default=None, description="real inputs from files in the model folder")
    task: TaskSpec | None = Field(default=None, description="task-level checks beside the tensor metrics")
    transformers: TransformersSpec | None = Field(default=None, description="a transformers model from its config; "
                                                  "the bot lays out its graphs")

    @model_validator(mode="before")
    @classmethod
    def _adapter_layout(cls, data: Any) -> Any:
        """A `transformers:` section with no entry/onnx/graphs of its own gets the adapter's layout."""
        if isinstance(data, dict) and isinstance(data.get("transformers"), dict) and not (
                data.get("entry") or data.get("onnx") or data.get("graphs")):
            return expand(data)
        return data

    @field_validator("entry")
    @classmethod
    def _entry_form(cls, v: str | None) -> str | None:
        return _entry_form(v)

    @model_validator(mode="after")
    def _one_quantization_setting(self) -> "Spec":
        """`target.per_channel` and `calibration.method` are older spellings of the quantization
        section's fields; both may be given only if they agree."""
        for old, value, new in (("target.per_channel", self.target.per_channel, "per_channel"),
                                ("calibration.method", self.calibration.method, "calibrate_method")):
            now = getattr(self.quantization, new)
            if value is not None and now is not None and value != now:
                raise ValueError(f"{old} ({value!r}) and quantization.{new} ({now!r}) disagree; give it once")
        return self

    @property
    def per_channel(self) -> bool:
        """Per-channel weight scales, from the quantization section, its older spelling, or the default."""
        for v in (self.quantization.per_channel, self.target.per_channel):
            if v is not None:
                return v
        return DEFAULT_PER_CHANNEL

    @property
    def calibrate_method(self) -> str:
        return self.quantization.calibrate_method or self.calibration.method or DEFAULT_CALIBRATE_METHOD

    @model_validator(mode="after")
    def _one_source(self) -> "Spec":
        if self.graphs:
            if self.data or self.task:
                raise ValueError("'data' and 'task' are for single-graph definitions (not with 'graphs')")
            if self.entry or self.onnx or self.inputs or self.variants:
                raise ValueError("with 'graphs', give entry/onnx, inputs and variants per graph, not at the top")
            names = [g.name for g in self.graphs]
            if len(set(names)) != len(names):
                raise ValueError(f"graphs: names must be unique, got {names}")
            for ref in [self.decode and self.decode.step, self.decode and self.decode.encoder,
                        self.decode and self.decode.prefill,
                        *(self.chain.graphs if self.chain else [])]:
                if ref and ref not in names:
                    raise ValueError(f"graph {ref!r} is not one of the graphs {names}")
            return self
        if self.decode or self.chain:
            raise ValueError("'decode' and 'chain' need 'graphs'")
        if not self.inputs:
            raise ValueError("inputs: at least one input is required")
        if bool(self.entry) == bool(self.onnx):
            raise ValueError("give exactly one of 'entry' (a PyTorch entry point) or 'onnx' (a file)")
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"inputs: names must be unique, got {names}")
        return self

    @property
    def quantized(self) -> bool:
        return self.target.precision != "fp16"

    def check_for(self, output: str) -> OutputCheck:
        """The thresholds for one output: its own entry, else '*', else the report's defaults."""
        c = self.validation.outputs.get(output) or self.validation.outputs.get("*") or OutputCheck()
        if c.cosine_min is None:
            c = c.model_copy(update={"cosine_min": 0.95 if self.quantized else 0.99})
        return c
