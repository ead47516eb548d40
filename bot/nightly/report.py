"""The nightly regression report: Markdown for an issue (or PR comment) and the job's step summary.

Quiet by design: a model with no regression is counted in one line, never listed; regressed metrics
get their accepted and current values, the rule they broke, the toolchain change, and their trend.
"""

from __future__ import annotations

from bot.nightly import history as H
from bot.report.render import BODY_BUDGET, env
from bot.report.view import fmt

MARKER = "<!-- aipc:nightly -->"  # appended by the forge when posting, so the issue is found again
TITLE = "aipc nightly: regressions"


def _value(v, metric: str) -> str:
    return fmt(v, 4 if "latency" in metric else 6)


def _shown(v, metric: str) -> str:
    if isinstance(v, bool):
        return "pass" if v else "FAIL"
    return _value(v, metric)


def render(result, *, nights: int = 8, limit: int = BODY_BUDGET) -> str:
    """`result` is a `bot.nightly.run.NightlyResult`."""
    rows = [{**r.to_dict(), "baseline": _value(r.baseline, r.metric), "now": _value(r.now, r.metric)}
            for r in result.regressions]
    trends, seen = [], set()
    for r in result.regressions:
        if (r.model, r.path) in seen:
            continue
        seen.add((r.model, r.path))
        vals = H.series(result.history, r.model, r.path, nights)
        if not vals:
            continue
        # the accepted value leads, so the line shows the step from it, not only tonight's flat tail
        points = [r.baseline_value, *vals]
        trends.append({"model": r.model, "metric": r.metric, "spark": H.sparkline(points),
                       "figures": " → ".join([f"{_shown(r.baseline_value, r.metric)} (accepted)",
                                              *(_shown(v, r.metric) for v in vals)])})
    regressed = sorted({r.model for r in result.regressions})
    n = len(result.regressions)
    headline = (f"{n} regression{'s' if n != 1 else ''} in {len(regressed)} of {result.total} "
                f"deployment{'s' if result.total != 1 else ''}" if n else
                f"no regressions ({result.total} deployment{'s' if result.total != 1 else ''})")
    toolchain = [{"model": m, "changes": c} for m, c in sorted(result.toolchain.items()) if m in regressed and c]
    ctx = dict(headline=headline, total=result.total, rows=rows, trends=trends, nights=nights,
               toolchain=toolchain, baseline=result.baseline, ref=result.ref, run=result.run_id,
               toolchain_now=", ".join(f"{k} {v}" for k, v in sorted(result.versions.items())) or "unknown",
               unchanged=result.unchanged, new=result.new)
    tpl = env().get_template("nightly_regressions.md.j2")
    for detail_chars in (4000, 1200, 300, 0):
        body = tpl.render(**ctx, detail_chars=detail_chars)
        if len(body) <= limit:
            return body
    return body[: limit - 200] + "\n\n_Cut to fit GitHub's size limit; every figure is in the nightly history._\n"
