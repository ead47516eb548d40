"""AIMET (`aimet-onnx`, Qualcomm's quantization toolkit) as the quantize stage's second engine.

Why a second engine: onnxruntime's QNN quantizer sets ranges by min-max/entropy/percentile only;
AIMET adds what Qualcomm ships for trained weights — cross-layer equalization, sequential MSE and
AdaRound — and simulates the HTP with the config file of the target's HTP arch. Its result is
turned into the same two things onnxruntime's path writes: a QDQ ONNX model (`to_onnx_qdq`, what
the ort-qnn backend compiles) and encodings; AIMET's own `.encodings` file and the float model it
belongs to (CLE changes weights) are written beside it for the SDK path, which reads them through
`--quantization_overrides` (`bot.backends.qairt_sdk`).

`aimet-onnx` is an optional install (the `[aimet]` extra); everything here imports it lazily and
`unavailable()` says why it cannot run.
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

from bot.errors import BadInput
from bot.stage_options import QuantizeOptions, Technique

ENGINE = "aimet"
#: the techniques in the order AIMET applies them: CLE rewrites weights before any encoding exists;
#: SeqMSE / AdaRound choose weight encodings before activations are calibrated
TECHNIQUES = ("cle", "seqmse", "adaround")
#: files the engine writes beside the QDQ model for the SDK path
AIMET_ENCODINGS = "aimet.encodings"  # AIMET's own export, normalised to the legacy overrides format
AIMET_FLOAT = "aimet_float.onnx"  # the float graph those encodings name (weights after CLE/AdaRound)
ACTIVATION = {"w8a8": "int8", "w8a16": "int16"}


@dataclass(frozen=True)
class AimetOptions:
    """The quantize stage's AIMET knobs (`QuantizeOptions`: `engine: aimet`, `techniques`, the two below)."""

    techniques: tuple[Technique, ...] = ()
    adaround_iterations: int = QuantizeOptions.model_fields["adaround_iterations"].default  # its why is there
    seqmse_candidates: int = QuantizeOptions.model_fields["seqmse_candidates"].default

    @classmethod
    def checked(cls, techniques, adaround_iterations: int | None = None,
                seqmse_candidates: int | None = None) -> "AimetOptions":
        """The techniques in AIMET's order, refusing unknown ones and two that both choose the weights."""
        techniques = list(techniques)
        unknown = [t for t in techniques if t not in TECHNIQUES]
        if unknown:
            raise BadInput(f"quantize.techniques: unknown AIMET technique(s) {unknown}; known: {list(TECHNIQUES)}")
        if "seqmse" in techniques and "adaround" in techniques:
            raise BadInput("quantize.techniques: seqmse and adaround both choose the weight encodings; pick one")
        return cls(techniques=tuple(t for t in TECHNIQUES if t in techniques),
                   adaround_iterations=int(adaround_iterations or cls.adaround_iterations),
                   seqmse_candidates=int(seqmse_candidates or cls.seqmse_candidates))

    @classmethod
    def from_opts(cls, opts: dict) -> "AimetOptions":
        """From a plain mapping (the skill's script); the quantize stage passes its typed options' fields."""
        return cls.checked(opts.get("techniques", []), opts.get("adaround_iterations"),
                           opts.get("seqmse_candidates"))


@dataclass
class AimetRun:
    """What one AIMET quantization did: the config it simulated and seconds per step."""

    config: str
    techniques: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Conv-output quantizers ahead of a Relu / Clip the HTP fuses, removed (bot.quant.fused_activations)
    fused_quantizers_dropped: int = 0


def unavailable() -> str | None:
    """Why the AIMET engine cannot run here, or None when it can."""
    if importlib.util.find_spec("aimet_onnx") is None:
        return "aimet-onnx is not installed (pip install 'aipc-bot[aimet]')"
    return None


def config_dir() -> Path:
    spec = importlib.util.find_spec("aimet_onnx")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(unavailable() or "aimet_onnx has no package directory")
    return Path(next(iter(spec.submodule_search_locations))) / "common" / "quantsim_config"


def htp_config_for(arch: int, available: list[int] | None = None) -> str:
    """The HTP quantsim config AIMET ships that is closest to `arch`: the newest one not newer than
    the target (a newer arch's rules may allow what the target refuses), else the oldest."""
    if available is None:  # htp_quantsim_config_v75.json, not the *_per_channel_linear variants
        available = sorted(int(m[1]) for p in config_dir().iterdir()
                           if (m := re.fullmatch(r"htp_quantsim_config_v(\d+)\.json", p.name)))
    if not available:
        raise RuntimeError("aimet_onnx ships no htp_quantsim_config_v*.json")
    older = [a for a in available if a <= arch]
    return f"htp_quantsim_config_v{max(older) if older else min(available)}.json"


def quantize(src: Path, out: Path, work: Path, calib: list[dict[str, np.ndarray]], precision: str, htp_arch: int,
             options: AimetOptions) -> AimetRun:
    """`src` (float ONNX) → `out` (QDQ ONNX) plus `work/aimet.encodings` and `work/aimet_float.onnx`."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    import aimet_onnx  # deferred: the optional [aimet] extra
    from aimet_onnx.quantsim import QuantizationSimModel  # deferred: the optional [aimet] extra

    from bot.quant.fused_activations import drop_fused_activation_quantizers  # deferred: imports onnx

    run = AimetRun(config=htp_config_for(htp_arch), techniques=options.techniques)
    model = onnx.load(str(src))
    t = time.perf_counter()
    if "cle" in options.techniques:
        from aimet_onnx.cross_layer_equalization import equalize_model  # deferred: the optional [aimet] extra

        equalize_model(model)
        run.seconds["cle"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    sim = QuantizationSimModel(model, param_type="int8", activation_type=ACTIVATION[precision],
                               config_file=str(config_dir() / run.config))
    run.seconds["quantsim"] = round(time.perf_counter() - t, 2)
    if "seqmse" in options.techniques:
        t = time.perf_counter()
        aimet_onnx.apply_seq_mse(sim, calib, num_candidates=options.seqmse_candidates)
        run.seconds["seqmse"] = round(time.perf_counter() - t, 2)
    if "adaround" in options.techniques:
        t = time.perf_counter()
        aimet_onnx.apply_adaround(sim, calib, num_iterations=options.adaround_iterations)
        run.seconds["adaround"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    sim.compute_encodings(calib)
    run.seconds["calibration"] = round(time.perf_counter() - t, 2)
    qdq = _qdq(sim, run)
    # AIMET quantizes a Conv's output and the ReLU6 after it; the HTP rounds once, after the fused pair
    run.fused_quantizers_dropped = len(drop_fused_activation_quantizers(qdq))
    onnx.save(qdq, str(out))
    export = work / "aimet-export"
    export.mkdir(exist_ok=True)
    sim.export(str(export), "model", encoding_version="1.0.0")
    float_model = onnx.load(str(export / "model.onnx"))
    onnx.save(float_model, str(work / AIMET_FLOAT))
    aimet = json.loads((export / "model.encodings").read_text())
    (work / AIMET_ENCODINGS).write_text(json.dumps(legacy_overrides(aimet), indent=1))
    return run


def _qdq(sim, run: AimetRun):
    """int8 weights behind DequantizeLinear and int32 biases: the QDQ form the QNN EP takes onnxruntime's in.
    AIMET 2.42 cannot derive an int32 bias scale for some MatMul + Add pairs (magika's Dense layers:
    "Length of encoding vector did not match BlockTensorQuantizer shape"); those graphs keep AIMET's own
    bias quantizers, and the run says so."""
    try:
        return sim.to_onnx_qdq(export_int32_bias=True, prequantize_constants=True)
    except RuntimeError as e:
        run.notes.append(f"int32 biases not derivable ({' '.join(str(e).split())[:160]}); exported without them")
        return sim.to_onnx_qdq(export_int32_bias=False, prequantize_constants=True)


def legacy_overrides(encodings: dict, known: set[str] | None = None) -> dict:
    """AIMET's encodings file (format 0.6.1 or 1.0.0) → the legacy `--quantization_overrides` form
    (`{"activation_encodings": {name: [entry]}, "param_encodings": {...}}`) every QAIRT converter
    reads, keeping only the tensors in `known` when given (the DLC has no others).

    Both formats share AIMET's convention real = scale · (q + offset), q ∈ [0, 2^bw − 1]; 1.0.0
    stores a list of {name, bw, scale[], offset[], is_sym, dtype} instead of a dict of entries.
    """
    out: dict[str, dict] = {"activation_encodings": {}, "param_encodings": {}}
    for section in out:
        body = encodings.get(section, {})
        items = body.items() if isinstance(body, dict) else ((e["name"], e) for e in body)
        for name, e in items:
            if known is not None and name not in known:
                continue
            out[section][name] = e if isinstance(e, list) else _legacy_entries(e)
    return out


def _legacy_entries(e: dict) -> list[dict]:
    if str(e.get("dtype", "INT")).upper() == "FLOAT":
        return [{"bitwidth": int(e["bw"]), "dtype": "float"}]
    bw = int(e["bw"])
    scales = [float(s) for s in e["scale"]]
    offsets = [int(o) for o in e["offset"]]
    if len(offsets) == 1 and len(scales) > 1:
        offsets *= len(scales)
    return [{"bitwidth": bw, "dtype": "int", "is_symmetric": str(bool(e.get("is_sym", False))),
             "min": s * o, "max": s * (2 ** bw - 1 + o), "offset": o, "scale": s}
            for s, o in zip(scales, offsets)]


def write_sdk_overrides(aimet_encodings: Path, float_onnx: Path, dest: Path) -> Path:
    """The AIMET engine's encodings as `--quantization_overrides` for the float graph the SDK converts
    (tensors that graph lacks, e.g. ones onnxruntime's preprocessing added, are left out)."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    m = onnx.load(str(float_onnx), load_external_data=False)
    known = ({i.name for i in m.graph.initializer} | {i.name for i in m.graph.input}
             | {o for n in m.graph.node for o in n.output})
    dest.write_text(json.dumps(legacy_overrides(json.loads(aimet_encodings.read_text()), known), indent=1))
    return dest
