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


def soc_from_device(text: str) -> Soc | None:
    """The SoC a device's `getprop ro.soc.model` names, if this table knows it.

    Android reports the part number (`SM8650`); some vendors add a suffix (`SM8650P`, `SA8295P`),
    which is the same HTP, so the longest known name the value starts with wins.
    """
    value = (text or "").strip().upper()
    if value in SOCS:
        return SOCS[value]
    starts = [name for name in SOCS if value.startswith(name)]
    return SOCS[max(starts, key=len)] if starts else None
