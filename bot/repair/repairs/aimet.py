"""AIMET repairs: Qualcomm's own post-training techniques, tried once onnxruntime's knobs are spent.

Each one switches the quantize stage to the AIMET engine (`bot.quant.aimet_engine`) and adds one
technique. They sit after the onnxruntime repairs of the quant level because they cost more
(SeqMSE and AdaRound take minutes on a real CNN, per-channel weights take seconds). SeqMSE and
AdaRound both choose the weights' quantization, so AdaRound replaces SeqMSE rather than stacking.
Each is withheld, with the reason recorded, when `aimet-onnx` is not installed (the `[aimet]`
extra) or the target runs fp16.
"""

from __future__ import annotations

from bot.quant import aimet_engine as A
from bot.records import FailureKind
from bot.repair.base import Repair
from bot.stage_options import QuantizeOptions as Q


def _with_technique(technique: str, replaces: tuple[str, ...] = ()):
    def propose(failure, state, ctx):
        q = state.opts(Q)
        if A.unavailable() or q.precision_for(ctx["spec"]) == "fp16":
            return None
        have = list(q.techniques) if q.engine == A.ENGINE else []
        if technique in have:
            return None
        techniques = [t for t in have if t not in replaces] + [technique]
        return state.with_options(Q, engine=A.ENGINE, techniques=[t for t in A.TECHNIQUES if t in techniques])  # AIMET's order
    return propose


def _unavailable() -> str | None:
    return A.unavailable()  # looked up at call time, so a test (or a later install) changes the answer


ACC = (FailureKind.ACCURACY,)
REPAIRS: tuple[Repair, ...] = (
    Repair("aimet-cle", "quant", ACC,
           "AIMET cross-layer equalization (rescales consecutive convs so per-tensor weight ranges even "
           "out), then AIMET's HTP quantization", _with_technique("cle"), unavailable=_unavailable,
           host_visible=True),
    Repair("aimet-seqmse", "quant", ACC,
           "AIMET sequential MSE: each layer's weight encodings chosen to minimise its output error on "
           "the calibration set", _with_technique("seqmse", replaces=("adaround",)), unavailable=_unavailable,
           host_visible=True),
    Repair("aimet-adaround", "quant", ACC,
           "AIMET AdaRound: each weight rounded up or down as learned on the calibration set, not to "
           "nearest", _with_technique("adaround", replaces=("seqmse",)), unavailable=_unavailable,
           host_visible=True),
)
