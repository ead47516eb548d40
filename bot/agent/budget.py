"""Token and cost accounting for the LLM agent, and the bounds that end a run.

The API reports tokens, never money, so cost = tokens × the price table (`pricing.yaml`, or a
price given in the definition/env). A server that omits `usage` still gets charged: tokens are
estimated from text length (4 chars ≈ 1 token) and the usage is marked estimated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PRICING_FILE = Path(__file__).with_name("pricing.yaml")


@dataclass(frozen=True)
class Price:
    model: str  # the table key that matched ("default" when none did)
    usd_in: float  # per 1M prompt tokens
    usd_out: float  # per 1M completion tokens
    usd_cached_in: float | None = None


def price_for(model: str, table: dict | None = None, override: tuple[float, float] | None = None) -> Price:
    """Longest-prefix match in the table; `override` (in, out per 1M) wins when given."""
    if override is not None:
        return Price(model, float(override[0]), float(override[1]))
    table = table if table is not None else yaml.safe_load(PRICING_FILE.read_text())
    models = table.get("models", {})
    name = (model or "").lower()
    keys = sorted((k for k in models if name.startswith(k.lower())), key=len, reverse=True)
    if keys:
        p = models[keys[0]]
        return Price(keys[0], float(p["in"]), float(p["out"]), p.get("cached_in"))
    d = table.get("default", {"in": 5.0, "out": 20.0})
    return Price("default", float(d["in"]), float(d["out"]), d.get("cached_in"))


@dataclass
class Usage:
    calls: int = 0
    errors: int = 0  # API calls that ended in an error after the client's own retries
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    usd: float = 0.0
    started: float = field(default_factory=time.monotonic)
    estimated: bool = False

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def add(self, price: Price, prompt: int, completion: int, cached: int = 0, estimated: bool = False) -> float:
        """Record one completion; returns its cost."""
        cached = min(cached or 0, prompt)
        rate_cached = price.usd_cached_in if price.usd_cached_in is not None else price.usd_in
        cost = ((prompt - cached) * price.usd_in + cached * rate_cached + completion * price.usd_out) / 1e6
        self.calls += 1
        self.tokens_in += prompt
        self.tokens_out += completion
        self.tokens_cached += cached
        self.usd += cost
        self.estimated |= estimated
        return cost

    def to_dict(self) -> dict:
        d = {"calls": self.calls, "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
             "usd": round(self.usd, 6), "seconds": round(self.seconds, 2)}
        if self.errors:
            d["errors"] = self.errors
        if self.tokens_cached:
            d["tokens_cached"] = self.tokens_cached
        if self.estimated:
            d["estimated"] = True
        return d


@dataclass
class Bounds:
    """The run's limits; `exceeded` names the first one hit, or ''."""

    steps: int
    usd: float
    wall_seconds: float

    def exceeded(self, usage: Usage, steps_taken: int) -> str:
        if usage.usd >= self.usd:
            return "budget"
        if steps_taken >= self.steps:
            return "steps"
        if usage.seconds >= self.wall_seconds:
            return "wall"
        return ""

    def remaining_seconds(self, usage: Usage) -> float:
        return max(0.0, self.wall_seconds - usage.seconds)
