"""Qualcomm SoCs the bot can target, and the HTP architecture each one carries.

SoC model ids are the QNN `soc_model` values (from executorch's qc_schema.py, see
shared/knowledge/qairt.md §1.5). The ids matter for context binaries: a binary prepared for
one arch runs on the same or a newer arch only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Soc:
    name: str
    soc_model: int
    htp_arch: int
    fp16: bool = True  # v68 is int8-only on the NPU
    int16: bool = True


SOCS: dict[str, Soc] = {
    s.name: s
    for s in [
        Soc("SA8295", 39, 68, fp16=False, int16=False),
        Soc("QCS6490", 35, 68, fp16=False, int16=False),
        Soc("SM8450", 36, 69),
        Soc("SM8550", 43, 73),
        Soc("QCS9075", 77, 73),
        Soc("SM8650", 57, 75),
        Soc("SM8750", 69, 79),
        Soc("SM8850", 87, 81),
    ]
}

DEFAULT_SOC = "SM8650"
