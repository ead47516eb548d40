"""Everything a deployment shows, rendered from its manifest: the files beside it and the texts a forge delivers.

`write_files` runs on every deploy (also with `AIPC_FORGE=off` or outside git): the repair patches
written from the manifest (`patches/` beside each part), the HTML report and its plots
(`report/`), and the own report of each part in a folder of its own. `texts` is what a forge is handed: the pull request's
title, body, labels and statuses, and the message of every commit of the bot's branch. The forge
adds only what it alone knows (links on its host, where large files are stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from bot.manifest import MANIFEST, Manifest, PartRow, StageRow
from bot.report.render import html_report, pr_body, pr_title
from bot.parts import end_to_end, parts
from bot.report.view import STAGE_WHY, fmt, labels, part_figure, patch_name, stage_figure



def write_files(deployment_dir: Path, manifest: dict) -> None:
    """Patches, the HTML report and each part's own report, written into the deployment folder."""
    deployment_dir = Path(deployment_dir)
    write_patches(deployment_dir, manifest)
    html_report(manifest, deployment_dir / "report")
    part_reports(deployment_dir, manifest)


def write_patches(deployment_dir: Path, manifest: dict) -> None:
    """Each part's repairs beside that part: `patches/` at the root, `<graph>/<variant>/patches/` in a folder."""
    for part in parts(manifest):
        if part.dir is not None:
            _write_patches(deployment_dir / part.dir, part.repairs)


def _write_patches(folder: Path, repairs: list[dict]) -> None:
    for r in repairs:
        if r.get("diff"):
            d = folder / "patches"
            d.mkdir(exist_ok=True)
            p = d / patch_name(r)
            text = r["diff"] if r["diff"].endswith("\n") else r["diff"] + "\n"
            if not p.exists() or p.read_text() != text:
                p.write_text(text)


def part_reports(deployment_dir: Path, manifest: dict) -> None:
    """The own HTML report of each part in a folder of its own, beside its stage folders (from the
    part's manifest there; the graph at the root is the deployment's report itself)."""
    for p in parts(manifest):
        folder = deployment_dir / (p.dir or "")
        if not (p.dir and (folder / MANIFEST).is_file()):
            continue
        try:
            own = Manifest.read(folder)  # None when it is not JSON: a part cut off mid-write has no report
        except ValueError:  # JSON, but not a manifest
            continue
        if own is not None:
            html_report(own, folder / "report")


@dataclass(frozen=True)
class StatusText:
    context: str  # aipc/<stage>, aipc/<graph>/<variant>, aipc/e2e/<check>
    state: str  # success | failure
    description: str


@dataclass(frozen=True)
class Texts:
    """The texts of one deployment for a forge, from its manifest (storage section included)."""

    manifest: dict

    @cached_property
    def typed(self) -> Manifest:
        """The manifest parsed once (`bot.manifest`); `manifest` stays the plain JSON the templates are keyed on."""
        return Manifest.parse(self.manifest)

    @property
    def title(self) -> str:
        return pr_title(self.manifest)

    @property
    def labels(self) -> list[str]:
        return labels(self.manifest)

    def body(self, images: dict[str, str], links: dict[str, str], cache: Path | None = None) -> str:
        """The PR body, with the image and report links the forge made on its host; `cache` is the file
        that keeps it with its render key, so an unchanged re-run does not render it again."""
        return pr_body(self.manifest, images=images, links=links, cache=cache)

    def statuses(self) -> list[StatusText]:
        """One per stage of the graph at the root, one per part in a folder, one per end-to-end check."""
        out = []
        for part in parts(self.typed):
            if part.at_root:
                out += [self._stage_status(s) for s in part.stages]
                continue
            p = part.row or PartRow()
            desc = part_figure(p) or ("passed" if p.passed else "failed")
            out.append(StatusText(f"aipc/{p.dir}", "success" if p.passed else "failure", desc[:140]))
        for e in end_to_end(self.typed):
            bad = [c.get("name", "") for c in e.get("checks") or [] if not c.get("passed")]
            desc = "passed" if e.get("passed") else "failed: " + "; ".join(bad)
            out.append(StatusText(f"aipc/e2e/{e.get('name')}", "success" if e.get("passed") else "failure",
                                  desc[:140]))
        return out

    @staticmethod
    def _stage_status(s: StageRow) -> StatusText:
        if s.passed:
            desc = f"passed in {float(s.seconds or 0):.2f}s"
        else:
            desc = ((s.failure or {}).get("message") or "failed")
        return StatusText(f"aipc/{s.stage}", "success" if s.passed else "failure", desc[:140])

    # -- commit messages (the forge appends where it kept large files) ---------------------------
    def stage_message(self, s: StageRow) -> str:
        """The commit of one stage's folder (of the graph at the root)."""
        name = s.stage
        verdict = "passed" if s.passed else "FAILED"
        lines = [f"aipc({self.typed.model}): {name} {verdict} in {float(s.seconds or 0):.2f}s"
                 + (" (cached)" if s.cached else ""), ""]
        if fig := stage_figure(s):
            lines += [fig, ""]
        for c in s.checks:
            thr = f" (threshold {fmt(c.get('threshold'))})" if c.get("threshold") is not None else ""
            lines.append(f"- {'ok' if c.get('passed') else 'FAIL'}: {c.get('name')}"
                         + (f" = {fmt(c.get('value'))}" if c.get("value") is not None else "") + thr)
        if s.failure:
            f = s.failure
            lines += ["", f"Failure ({f.get('kind')}): {f.get('message', '')}"]
        lines += ["", f"Why this stage: {STAGE_WHY.get(name, 'a stage of the workflow')}."]
        return "\n".join(lines)

    def part_message(self, part: PartRow, stages: list[StageRow]) -> str:
        """The commit of one part's folder; `part` is the top manifest's row, `stages` from the part's own manifest."""
        verdict = "deployed" if part.passed else "FAILED"
        inputs = ", ".join(f"{k} {fmt(v)}" for k, v in part.inputs.items())
        lines = [f"aipc({self.typed.model}): part {part.dir} {verdict} in "
                 f"{float(part.seconds or 0):.2f}s", ""]
        if fig := part_figure(part):
            lines += [fig, ""]
        lines.append(f"Static shapes: {inputs}")
        for s in stages:
            lines.append(f"- {'ok' if s.passed else 'FAIL'}: {s.stage} in {float(s.seconds or 0):.2f}s")
        for b, meta in part.binaries.items():
            lines.append(f"Context binary: {b} ({meta.get('bytes')} bytes)")
        return "\n".join(lines)

    def repair_message(self, r: dict, part: str = "") -> str:
        """The commit of one repair attempt; `part` is "" or "<graph>/<variant>/"."""
        kept = "kept" if r.get("kept") else "tried and reverted"
        where = f"{part.rstrip('/')} " if part else ""
        return (f"aipc({self.typed.model}): {where}repair {int(r.get('n') or 0):02d} {r.get('repair')} "
                f"({r.get('level')}) {kept}\n\n"
                f"Why: {r.get('reason', 'no reason recorded')}\n"
                f"Before: {fmt(r.get('before'))}\nAfter: {fmt(r.get('after'))}\n")

    def manifest_message(self) -> str:
        """The last commit: the manifest and the report (and, over parts in folders, the end-to-end checks)."""
        m = self.typed
        model = m.model
        if any(p.at_root for p in parts(m)):
            return (f"aipc({model}): manifest and report, {m.status}\n\n"
                    f"The manifest lists every artifact with sha256 and size, the tool versions, and where large "
                    f"files are kept; report/ holds the HTML report and its plots linked from the pull request.")
        lines = [f"aipc({model}): manifest, end-to-end checks and report, {m.status}", ""]
        for e in end_to_end(m):
            for c in e.get("checks") or []:
                thr = f" (threshold {fmt(c.get('threshold'))})" if c.get("threshold") is not None else ""
                lines.append(f"- {'ok' if c.get('passed') else 'FAIL'}: {c.get('name')} = {fmt(c.get('value'))}{thr}")
        for g, w in m.weight_sharing.items():
            lines.append(f"- weight sharing ({g}): {w.get('option')}, usable: {fmt(w.get('usable'))}; "
                         f"deployed as {w.get('deployed')}")
        lines += ["", "The top manifest lists the parts (status, binaries, metrics, repairs) and the end-to-end "
                      "checks; runtime/ holds the packaged decode loop when there is one; report/ the HTML report."]
        return "\n".join(lines)

    @staticmethod
    def patch_file(r: dict) -> str:
        """The file name of a repair's patch under patches/."""
        return patch_name(r)
