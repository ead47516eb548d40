"""Which differences between tonight and the accepted figures are regressions: one table, read top down.

A rule names a path into the figures (`*` = every key at that level, e.g. every output), which way is
better, and the tolerance (absolute, and for latency also relative) a change must exceed before it
counts. The simulator's timing is noisy (the same binary measured 24–42 ms over eight runs on a
2-core runner), hence the wide default latency tolerance; on a real device use `latency_rel=0.2`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from bot.errors import BadInput
from bot.nightly.figures import value_at


@dataclass(frozen=True)
class Tolerances:
    cosine: float = 0.001  # absolute drop of cosine similarity per output
    sqnr_db: float = 1.0  # absolute drop of SQNR, dB, per output
    htp_nodes: int = 0  # nodes that may leave the HTP
    latency_rel: float = 0.5  # slower by more than this fraction of the baseline …
    latency_abs_ms: float = 5.0  # … and by more than this many ms

    def with_overrides(self, items: list[str] | dict | None) -> "Tolerances":
        """`["cosine=0.002", "latency_rel=0.2"]` (the CLI's --tolerance) or a dict → new tolerances."""
        known = {f.name: f.type for f in fields(self)}
        pairs = list(items.items()) if isinstance(items, dict) else [i.partition("=")[::2] for i in items or []]
        updates = {}
        for key, value in pairs:
            key = str(key).strip().replace("-", "_")
            if key not in known:
                raise BadInput(f"unknown tolerance {key!r}; known: {', '.join(known)}", where="--tolerance",
                               hint="e.g. --tolerance latency_rel=0.2")
            try:
                updates[key] = float(value)
            except (TypeError, ValueError):
                raise BadInput(f"tolerance {key}={value!r} is not a number", where="--tolerance") from None
            if updates[key] < 0:
                raise BadInput(f"tolerance {key} must not be negative", where="--tolerance")
        return replace(self, **updates)


@dataclass(frozen=True)
class Rule:
    kind: str  # accuracy | placement | latency | failure
    path: tuple[str, ...]  # into the figures; "*" matches every key at that level
    better: str  # "higher", "lower", or "pass" (True on main, False now)
    label: str  # how a row names the metric; {key} is what "*" matched
    tolerance: str | None = None  # Tolerances field: absolute
    relative: str | None = None  # Tolerances field: relative to the baseline (both must be exceeded)
    unit: str = ""


RULES: tuple[Rule, ...] = (
    Rule("failure", ("integrity",), "pass", "accepted artifacts (sha256)"),
    Rule("failure", ("stages", "*"), "pass", "{key} stage"),
    Rule("accuracy", ("checks", "*"), "pass", "{key} threshold"),
    Rule("accuracy", ("outputs", "*", "cosine"), "higher", "{key} cosine", "cosine"),
    Rule("accuracy", ("outputs", "*", "sqnr_db"), "higher", "{key} SQNR dB", "sqnr_db", unit=" dB"),
    Rule("placement", ("placement", "htp"), "higher", "nodes on the HTP", "htp_nodes", unit=" nodes"),
    Rule("latency", ("latency_ms",), "lower", "latency ms (median)", "latency_abs_ms", "latency_rel", " ms"),
)


@dataclass
class Regression:
    model: str
    kind: str
    metric: str
    path: tuple[str, ...]
    baseline: object
    now: object
    change: str = ""
    rule: str = ""
    detail: str = ""

    @property
    def baseline_value(self):
        """The accepted value as the figures hold it (True for a stage that passed)."""
        return True if self.baseline == "pass" else self.baseline

    def to_dict(self) -> dict:
        return {"model": self.model, "kind": self.kind, "metric": self.metric, "path": list(self.path),
                "baseline": self.baseline, "now": self.now, "change": self.change, "rule": self.rule,
                "detail": self.detail}


def _expand(figures: dict, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    """Concrete paths a rule path names in these figures, with what `*` matched (for the label)."""
    out = [((), "")]
    for key in path:
        nxt = []
        for prefix, matched in out:
            here = value_at(figures, prefix)
            if key == "*":
                nxt += [((*prefix, k), k) for k in (here or {}) if isinstance(here, dict)]
            else:
                nxt.append(((*prefix, key), matched))
        out = nxt
    return out


def _num(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def _worse(rule: Rule, base: float, now: float, tol: Tolerances) -> bool:
    if math.isnan(now):
        return not math.isnan(base)
    if math.isnan(base):
        return False
    absolute = getattr(tol, rule.tolerance) if rule.tolerance else 0.0
    delta = now - base if rule.better == "lower" else base - now  # > 0: worse
    if delta <= absolute:
        return False
    if rule.relative:
        return delta > abs(base) * getattr(tol, rule.relative)
    return True


def _rule_text(rule: Rule, tol: Tolerances) -> str:
    if rule.better == "pass":
        return "passed on main, fails now"
    parts = []
    if rule.relative:
        parts.append(f"{getattr(tol, rule.relative):.0%}")
    if rule.tolerance and getattr(tol, rule.tolerance):
        parts.append(f"{getattr(tol, rule.tolerance):g}{rule.unit}")
    word = "rise" if rule.better == "lower" else "drop"
    return f"{word} > {' and > '.join(parts)}" if parts else f"any {word}"


def _change(base: float, now: float, rule: Rule) -> str:
    if math.isnan(now) or math.isnan(base):
        return "NaN"
    d = now - base
    text = f"{d:+.4g}"
    if rule.relative and base:
        text += f" ({d / abs(base):+.0%})"
    return text


def compare(model: str, baseline: dict, now: dict, tol: Tolerances | None = None,
            rules: tuple[Rule, ...] = RULES) -> list[Regression]:
    """Regression rows for one model: every rule, every concrete path it names in the baseline.

    A metric missing tonight (its stage did not get that far) is not a row of its own: the failed
    stage already is one, with the error."""
    tol = tol or Tolerances()
    rows: list[Regression] = []
    for rule in rules:
        for path, key in _expand(baseline, rule.path):
            base, cur = value_at(baseline, path), value_at(now, path)
            label = rule.label.format(key=key)
            if rule.better == "pass":
                if base is True and cur is False:
                    detail = (now.get("failures") or {}).get(key or path[-1], "") if rule.kind == "failure" else ""
                    rows.append(Regression(model, rule.kind, label, path, "pass", "FAIL", "", _rule_text(rule, tol),
                                           detail))
                continue
            b, c = _num(base), _num(cur)
            if b is None or c is None:
                continue
            if _worse(rule, b, c, tol):
                rows.append(Regression(model, rule.kind, label, path, base, cur, _change(b, c, rule),
                                       _rule_text(rule, tol)))
    return rows


def toolchain_changes(baseline: dict, now: dict) -> list[dict]:
    """Tonight's backend versions next to the ones the deployment was accepted with, changed ones only."""
    return [{"name": k, "baseline": baseline.get(k, "—"), "now": v} for k, v in sorted(now.items())
            if str(baseline.get(k, "—")) != str(v)]
