"""`aipc nightly`: is every deployment still as good with the toolchain installed tonight?

The flow, one module per step:

1. `baseline`  — the figures last accepted on main (`git show <ref>:deployments/<model>/manifest.json`).
2. `recompile` — rebuild the context binary from the accepted quantized ONNX with tonight's backend and
                 validate it, in a scratch folder (the accepted deployment is never touched).
3. `figures`   — both sides reduced to one shape: stages passed, per-output accuracy, placement, latency.
4. `rules`     — a small declarative table says which differences are regressions (with tolerances).
5. `history`   — one JSON line per model per run, so the report can show the trend.
6. `report`    — the Jinja-rendered Markdown (issue body, step summary); `run` wires it all and posts.
"""
