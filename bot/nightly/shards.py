"""Split tonight's deployments into shards, one matrix job each, so the nightly fans out over runners.

GitHub Actions is the scheduler (`nightly.yml`: plan → matrix of shards → aggregate); this module only
decides who goes where. A deployment runs on a runner carrying the labels its target needs (the ones
`aipc doctor --labels` gives a runner: `htp-sim` for the simulated HTP, `qairt` for the SDK, `device` and
`soc-<soc>` for a phone), and within one set of labels the deployments are dealt longest first to the
least-loaded shard, weighted by the seconds their re-checked stages took when they were accepted.

No toolchain (the manifest's pydantic model and the standard library): the planning job runs on a
GitHub-hosted runner without it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bot.errors import BadInput
from bot.manifest import MANIFEST, Manifest
from bot.parts import parts

RECHECKED = ("compat", "compile", "validate")  # the stages the nightly runs again (bot.nightly.recompile)
UNKNOWN_SECONDS = 60.0  # a deployment whose manifest has no timings weighs as much as a typical one
MATRIX_LIMIT = 256  # GitHub's limit of jobs one matrix may generate
BASE_LABELS = ("self-hosted", "linux", "x64")


@dataclass(frozen=True)
class Deployment:
    """One folder under `deployments/`, as the planner sees it."""

    name: str  # the folder's name (what `aipc nightly --deployments` takes)
    labels: tuple[str, ...]  # runs-on labels of a runner that can re-check it
    seconds: float  # weight: compat + compile + validate seconds when it was accepted


@dataclass
class Shard:
    index: int  # 1-based, stable for a given set of deployments
    labels: list[str]
    deployments: list[str] = field(default_factory=list)
    seconds: float = 0.0  # the expected work, for the plan's summary

    def matrix_entry(self, of: int) -> dict:
        return {"shard": self.index, "of": of, "labels": self.labels, "deployments": " ".join(self.deployments),
                "seconds": round(self.seconds, 1)}


@dataclass
class ShardPlan:
    shards: list[Shard]
    max_parallel: int

    @property
    def matrix(self) -> dict:
        """`strategy.matrix` for the shard job: `include` only, so each shard carries its own labels."""
        return {"include": [s.matrix_entry(len(self.shards)) for s in self.shards]}

    def outputs(self) -> dict[str, str]:
        """`$GITHUB_OUTPUT` lines the workflow reads (`matrix`, `max_parallel`, `count`, and every
        planned `deployments`, which the merge expects results for)."""
        return {"matrix": json.dumps(self.matrix, separators=(",", ":")), "max_parallel": str(self.max_parallel),
                "count": str(len(self.shards)),
                "deployments": " ".join(sorted(d for s in self.shards for d in s.deployments))}

    def to_json(self) -> str:
        return json.dumps({"max_parallel": self.max_parallel, "shards": [asdict(s) for s in self.shards]}, indent=2)


def _label(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", str(text).lower()).strip("-")


def labels_for(target: dict) -> tuple[str, ...]:
    """The runner labels a target needs, spelled as `bot.doctor.derive_labels` registers them."""
    engine = (target or {}).get("engine") or "auto"
    if engine == "adb":
        need = ("device", _label(f"soc-{(target or {}).get('soc') or 'SM8650'}"))
    elif engine == "qairt-sdk":
        need = ("qairt",)
    else:  # auto / ort-qnn: the HTP simulated by the onnxruntime-qnn wheel
        need = ("htp-sim",)
    return (*BASE_LABELS, *need)


def _seconds(manifest: Manifest) -> float:
    stages = [s for part in parts(manifest) for s in part.stages]
    total = sum(float(s.seconds or 0.0) for s in stages if s.stage in RECHECKED)
    return total if total > 0 else UNKNOWN_SECONDS


def deployments(root: Path) -> list[Deployment]:
    """Every `deployments/<name>/manifest.json` under `root`, sorted by name."""
    found = []
    for mf in sorted((Path(root) / "deployments").glob(f"*/{MANIFEST}")):
        try:
            m = Manifest.parse(json.loads(mf.read_text()))
        except (OSError, ValueError) as e:  # not JSON, or JSON that is not a manifest (pydantic's error is one)
            raise BadInput(f"cannot read the manifest: {e}", where=str(mf)) from None
        target = m.target or next((p.target for p in m.parts or [] if p.target), {})
        found.append(Deployment(mf.parent.name, labels_for(target), _seconds(m)))
    return found


def plan(found: list[Deployment], *, shards: int, max_parallel: int | None = None) -> ShardPlan:
    """At most `shards` shards in all (at least one per set of labels), longest deployments first onto
    the least-loaded shard of their labels; `max_parallel` (default: `shards`) caps the jobs at once."""
    if shards < 1:
        raise BadInput(f"--shards {shards}: expected at least 1", where="--shards")
    if max_parallel is not None and max_parallel < 1:
        raise BadInput(f"--max-parallel {max_parallel}: expected at least 1", where="--max-parallel")
    if not found:
        raise BadInput("no deployments to re-check", where="deployments/")
    groups: dict[tuple[str, ...], list[Deployment]] = {}
    for d in found:
        groups.setdefault(d.labels, []).append(d)
    if shards < len(groups):
        shards = len(groups)  # every set of labels needs a runner of its own
    if shards > MATRIX_LIMIT:
        raise BadInput(f"--shards {shards}: a matrix has at most {MATRIX_LIMIT} jobs", where="--shards")
    total = sum(d.seconds for d in found)
    # shards shared out over label sets by their work (each gets one, the rest by largest remainder)
    share = {k: 1 for k in groups}
    for _ in range(shards - len(groups)):
        k = max(groups, key=lambda k: (sum(d.seconds for d in groups[k]) / total / share[k]
                                       if share[k] < len(groups[k]) else -1.0, k))
        if share[k] >= len(groups[k]):
            break  # no label set has more deployments than shards: more shards would be empty
        share[k] += 1
    out: list[Shard] = []
    for labels in sorted(groups):
        mine = [Shard(0, list(labels)) for _ in range(share[labels])]
        for d in sorted(groups[labels], key=lambda d: (-d.seconds, d.name)):
            s = min(mine, key=lambda s: (s.seconds, len(s.deployments)))
            s.deployments.append(d.name)
            s.seconds += d.seconds
        out += mine
    for i, s in enumerate(out, 1):
        s.index = i
        s.deployments.sort()
    return ShardPlan(out, min(max_parallel or len(out), len(out)))


def plan_command(root: Path, *, shards: int, max_parallel: int | None = None, output: Path | None = None,
                 echo=print) -> int:
    """`aipc nightly-plan`: print the plan; with `--output $GITHUB_OUTPUT` also the step's outputs."""
    p = plan(deployments(root), shards=shards, max_parallel=max_parallel)
    if output:
        with open(output, "a") as f:
            f.write("".join(f"{k}={v}\n" for k, v in p.outputs().items()))
    echo(p.to_json())
    return 0
