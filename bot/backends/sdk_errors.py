"""What a QAIRT SDK tool's error text means: one table of (pattern → failure kind), shared.

Every SDK backend (host tools, adb device) turns a failed tool run into a `Failure` through
`tool_failure`, and the repair loop may call `classify` on any text it holds. The patterns are the
messages quoted in shared/knowledge/qairt.md §5; the first match wins, so specific ones come first.
The tool's own text is always kept in `Failure.log` (tail-shortened), never paraphrased away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.records import Failure, FailureKind, RejectedNode

LOG_CHARS = 4000


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern
    kind: FailureKind
    label: str  # short name of the signature, for reports and tests


def _r(rx: str, kind: FailureKind, label: str) -> Rule:
    return Rule(re.compile(rx, re.IGNORECASE | re.MULTILINE), kind, label)


# Groups a pattern may capture: `op` (operator type), `node` (node or tensor name), `rank`.
RULES: list[Rule] = [
    _r(r"(?:Node (?P<node>\S+?):\s*)?['\"]?No translation registered for op type (?:onnx_)?(?P<op>[A-Za-z0-9_]+)",
       FailureKind.OP_REJECTED, "no-translation"),
    _r(r"The following operators are not implemented:\s*\[(?P<op>[^\]]*)\]", FailureKind.OP_REJECTED, "not-implemented"),
    _r(r"(?:(?P<node>[\w./:-]+)\s+)?has incorrect Rank (?P<rank>\d+)|incorrect Rank (?P<rank2>\d+)",
       FailureKind.OP_REJECTED, "rank"),
    _r(r"Dynamic tensor is not supported|dynamic (?:input )?shapes? (?:are|is) not supported", FailureKind.DYNAMIC_SHAPE,
       "dynamic-shape"),
    _r(r"\"(?P<op>\w+)\" generated: could not create op|could not create op:?\s*(?P<qop>[\w:]+)",
       FailureKind.OP_REJECTED, "could-not-create-op"),
    _r(r"Failed to validate op (?P<node>\S+).*?(?:error 0x[0-9a-f]+|QNN_OP_PACKAGE_ERROR_VALIDATION_FAILURE)",
       FailureKind.OP_REJECTED, "op-validation"),
    _r(r"Type not supported|Unsupported (?:data ?type|dtype)|int64 is not supported", FailureKind.UNSUPPORTED_DTYPE,
       "dtype"),
    _r(r"Failed to finalize (?:QNN )?graph|Graph Finalize failure|graph prepare failed|unable to tile",
       FailureKind.COMPILE_ERROR, "finalize"),
    _r(r"memory usage exceeded device limits|std::bad_alloc|dspservice just died", FailureKind.COMPILE_ERROR,
       "device-resources"),
    _r(r"Graph contains \d+ inputs, but only found input data for \d+ inputs", FailureKind.INTERFACE_MISMATCH,
       "input-count"),
]


@dataclass
class Classified:
    kind: FailureKind
    label: str
    nodes: list[RejectedNode]


def classify(text: str) -> Classified:
    """The failure kind a tool's text signals, with the nodes/ops it names (TOOL_ERROR if none)."""
    for rule in RULES:
        hits = list(rule.pattern.finditer(text or ""))
        if not hits:
            continue
        nodes: dict[tuple[str, str], RejectedNode] = {}
        for m in hits:
            g = {k: v for k, v in m.groupdict().items() if v}
            line = _line_of(text, m)
            if rule.label == "not-implemented":
                for op in re.findall(r"'([^']+)'", g.get("op", "")):
                    nodes.setdefault((op, op), RejectedNode(op, op, line))
                continue
            op = "?" if rule.label == "rank" else (g.get("op") or g.get("qop") or "")
            if rule.label == "no-translation":
                op = _onnx_op(op)
            name = g.get("node") or op or "?"
            if op or g.get("node"):
                nodes.setdefault((name, op), RejectedNode(name, op or "?", line))
        return Classified(rule.kind, rule.label, list(nodes.values()))
    return Classified(FailureKind.TOOL_ERROR, "unrecognised", [])


_ONNX_OPS = {o.lower(): o for o in (
    "Einsum", "DynamicQuantizeLinear", "GridSample", "NonMaxSuppression", "ScatterND", "Mod", "Floor", "Resize",
    "TopK", "Loop", "If", "Range", "NonZero", "Unique", "RoiAlign", "GatherND", "CumSum", "Erf", "Gelu",
    "LayerNormalization", "Where", "Expand", "Tile", "Col2Im", "STFT", "DFT")}


def _onnx_op(op: str) -> str:
    """Converter op ids are lower-case (`onnx_einsum`); give the ONNX spelling when we know it."""
    return _ONNX_OPS.get(op.lower(), op)


def _line_of(text: str, m: re.Match) -> str:
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    return text[start:end if end >= 0 else len(text)].strip()[:300]


def tail(text: str, n: int = LOG_CHARS) -> str:
    return text if len(text) <= n else "…" + text[-n:]


def tool_failure(stage: str, tool: str, message: str, log: str, *, command: list[str] | None = None,
                 returncode: int | None = None, kind: FailureKind | None = None) -> Failure:
    """A structured failure for one tool run; kind from the tool's text unless forced."""
    c = classify(log)
    details = {"tool": tool, "signature": c.label}
    if command is not None:
        details["command"] = " ".join(command)
    if returncode is not None:
        details["returncode"] = returncode
    k = kind or c.kind
    if c.nodes and k == c.kind:
        ops = sorted({n.op for n in c.nodes if n.op and n.op != "?"})
        if ops:
            message += f" ({', '.join(ops)})"
    return Failure(stage, k, f"{tool}: {message}", nodes=c.nodes if k == c.kind else [], details=details,
                   log=tail(log))
