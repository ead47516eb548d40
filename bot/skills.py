"""Agent Skills (`skills/<name>/SKILL.md`): load, validate against the format, read their repairs.

Two readers use a skill: the rule planner (which catalogue repairs answer which failures) and the
LLM agent (name + description up front, the body on demand — progressive disclosure). The format
rules are the Agent Skills specification's (agentskills.io; `skills-ref`'s validator): `name`
≤64 chars of lowercase letters, digits and single hyphens, equal to the folder name;
`description` non-empty, ≤1024 chars; optional `license`, `compatibility` (≤500), `metadata`
(string → string), `allowed-tools`; nothing else.

A skill names the repairs it knows in a `## Repairs` section, one per line:
``- `repair-id`: when … (what it does)``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.errors import BadInput

SKILLS_DIR = Path(__file__).resolve().parents[1] / "skills"
ALLOWED_FIELDS = {"name", "description", "license", "allowed-tools", "metadata", "compatibility"}
NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
MAX_NAME, MAX_DESCRIPTION, MAX_COMPAT, MAX_BODY_LINES = 64, 1024, 500, 500
_REPAIR_LINE = re.compile(r"^\s*[-*]\s+`(?P<id>[a-z0-9][a-z0-9-]*)`\s*[:—-]\s*(?P<when>.+)$")


@dataclass
class Skill:
    name: str
    description: str
    path: Path  # the SKILL.md file
    body: str
    meta: dict = field(default_factory=dict)
    repairs: dict[str, str] = field(default_factory=dict)  # repair id → when it applies

    @property
    def folder(self) -> Path:
        return self.path.parent

    def scripts(self) -> list[str]:
        d = self.folder / "scripts"
        return sorted(p.name for p in d.iterdir() if p.is_file() and p.suffix == ".py") if d.is_dir() else []


def split_front_matter(text: str, where: str) -> tuple[dict, str]:
    if not text.startswith("---"):
        raise BadInput("SKILL.md must start with YAML front matter between '---' lines", where=where)
    parts = text.split("\n---", 1)
    if len(parts) != 2:
        raise BadInput("front matter is not closed with a '---' line", where=where)
    head, body = parts[0][3:], parts[1]
    body = body.split("\n", 1)[1] if "\n" in body else ""
    try:
        meta = yaml.safe_load(head)
    except yaml.YAMLError as e:
        raise BadInput(f"front matter is not valid YAML: {e}", where=where) from None
    if not isinstance(meta, dict):
        raise BadInput("front matter must be a YAML mapping", where=where)
    return meta, body


def validate(meta: dict, body: str, folder_name: str) -> list[str]:
    """Every way the skill breaks the format, as readable lines (empty = valid)."""
    errs = []
    extra = sorted(set(meta) - ALLOWED_FIELDS)
    if extra:
        errs.append(f"Unexpected fields in frontmatter: {', '.join(extra)}")
    name = meta.get("name")
    if not isinstance(name, str) or not name.strip():
        errs.append("Missing required field in frontmatter: name")
    else:
        name = unicodedata.normalize("NFKC", name.strip())
        if len(name) > MAX_NAME:
            errs.append(f"name is {len(name)} characters; at most {MAX_NAME}")
        if not NAME_RE.match(name):
            errs.append(f"name {name!r}: lowercase letters, digits and single hyphens only, "
                        "not starting or ending with a hyphen")
        if unicodedata.normalize("NFKC", folder_name) != name:
            errs.append(f"Directory name {folder_name!r} must match skill name {name!r}")
    desc = meta.get("description")
    if not isinstance(desc, str) or not desc.strip():
        errs.append("Missing required field in frontmatter: description")
    elif len(desc) > MAX_DESCRIPTION:
        errs.append(f"description is {len(desc)} characters; at most {MAX_DESCRIPTION}")
    compat = meta.get("compatibility")
    if compat is not None and (not isinstance(compat, str) or len(compat) > MAX_COMPAT):
        errs.append(f"compatibility must be a string of at most {MAX_COMPAT} characters")
    md = meta.get("metadata")
    if md is not None and (not isinstance(md, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                                for k, v in md.items())):
        errs.append("metadata must be a map from string keys to string values")
    tools = meta.get("allowed-tools")
    if tools is not None and not isinstance(tools, (str, list)):
        errs.append("allowed-tools must be a space-delimited string or a list")
    if not body.strip():
        errs.append("the body (instructions after the front matter) is empty")
    elif len(body.splitlines()) > MAX_BODY_LINES:
        errs.append(f"the body has {len(body.splitlines())} lines; keep SKILL.md under {MAX_BODY_LINES}")
    return errs


def parse_repairs(body: str) -> dict[str, str]:
    """`- `id`: when …` lines under the `## Repairs` heading (until the next heading)."""
    out, inside = {}, False
    for line in body.splitlines():
        if line.startswith("#"):
            inside = line.lstrip("#").strip().lower() == "repairs"
            continue
        if inside and (m := _REPAIR_LINE.match(line)):
            out[m["id"]] = m["when"].strip()
    return out


def load_skill(folder: Path, strict: bool = True) -> Skill:
    path = Path(folder) / "SKILL.md"
    if not path.is_file():
        raise BadInput("no SKILL.md in the skill folder", where=str(folder))
    meta, body = split_front_matter(path.read_text(encoding="utf-8"), str(path))
    errs = validate(meta, body, Path(folder).name)
    if errs and strict:
        raise BadInput("; ".join(errs), where=str(path))
    return Skill(name=str(meta.get("name", "")).strip(), description=str(meta.get("description", "")).strip(),
                 path=path, body=body, meta=meta, repairs=parse_repairs(body))


def load_skills(root: Path | None = None, strict: bool = True) -> dict[str, Skill]:
    """All skills under `root` (default: the repository's `skills/`), by name."""
    root = Path(root or SKILLS_DIR)
    if not root.is_dir():
        return {}
    skills = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and (p / "SKILL.md").exists()):
        s = load_skill(d, strict=strict)
        skills[s.name] = s
    return skills


def repairs_named(skills: dict[str, Skill]) -> dict[str, list[str]]:
    """repair id → the skills that name it."""
    out: dict[str, list[str]] = {}
    for s in skills.values():
        for rid in s.repairs:
            out.setdefault(rid, []).append(s.name)
    return out


def catalogue_prompt(skills: dict[str, Skill]) -> str:
    """The ~100-token-per-skill block for a system prompt (names, descriptions, locations)."""
    lines = ["<available_skills>"]
    for s in skills.values():
        lines.append(f"<skill><name>{s.name}</name><description>{s.description}</description>"
                     f"<scripts>{' '.join(s.scripts())}</scripts></skill>")
    lines.append("</available_skills>")
    return "\n".join(lines)
