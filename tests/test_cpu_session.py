"""Every CPU check computes graphs one way (`bot.cpu_session.as_written`): golden outputs of an
`onnx:` definition, parity, the CPU QDQ simulation, bias correction and attribution. Two of them at
different optimization levels disagreed by up to 0.002 (basic-pitch's parity) and, fused into
QLinearConv, by cosine 0.742 vs 0.946 (deep-sort under AIMET): the screen would then rank
candidates on numbers the rest of the bot does not see."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# file → what it says of its own rule: tensor capture keeps every intermediate (no optimization at
# all); the host part runs as the packaged `run.py` runs it (default options), so validate sees
# what a user's device run gives
OWN_RULE = {"bot/repair/localize.py": "ORT_DISABLE_ALL", "bot/stages/_ranges.py": "ORT_DISABLE_ALL",
            "bot/graph/host_part.py": "the packaged\n`run.py`"}


def cpu_sessions(path: Path) -> list[tuple[int, str]]:
    lines = path.read_text().splitlines()
    return [(i + 1, line.strip()) for i, line in enumerate(lines)
            if "InferenceSession(" in line and "CPUExecutionProvider" in line]


def test_every_cpu_session_in_the_bot_computes_the_graph_as_written():
    stray = [f"{p.relative_to(ROOT)}:{n}: {line}"
             for p in sorted((ROOT / "bot").rglob("*.py"))
             if "assets" not in p.parts and str(p.relative_to(ROOT)) not in OWN_RULE  # assets: packaged scripts
             for n, line in cpu_sessions(p) if "as_written()" not in line]
    assert stray == [], "\n".join(stray)
    for rel, why in OWN_RULE.items():  # the exceptions still exist and still say why
        text = (ROOT / rel).read_text()
        assert cpu_sessions(ROOT / rel) and why in text, rel


def test_the_scan_finds_a_session_opened_another_way(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('s = ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])\n'
                 's = ort.InferenceSession(p, as_written(), providers=["CPUExecutionProvider"])\n')
    assert [n for n, line in cpu_sessions(f) if "as_written()" not in line] == [1]


def test_as_written_is_the_basic_level():
    import onnxruntime as ort

    from bot.cpu_session import as_written

    assert as_written().graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert re.search(r"as_written", (ROOT / "bot/stages/load.py").read_text())  # the onnx: golden outputs
