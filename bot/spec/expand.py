"""A definition expanded into the parts a deployment builds: one single-graph, static-shape `Spec` each.

A definition with `graphs:` and/or `variants:` gives one part per (graph, variant), each deployed into its
own folder (`<out>/<graph>/<variant>/`, or `<out>/<graph>/` / `<out>/<variant>/` when there is one of
either); any other definition is one part at the deployment folder itself. The deploy, `aipc plan`,
revalidation and the nightly all walk these parts, so a single graph takes no path of its own. Light
(the schema only): the planning commands expand a definition without loading the stages.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import BadInput
from bot.spec.schema import GraphSpec, Spec

TOP_ONLY = {"graphs", "variants", "decode", "chain"}  # sections of the whole deployment, not of one part


@dataclass
class Part:
    """One graph at one static size, deployed by the repair loop and the pipeline into `<out>/<rel>`."""

    graph: str
    variant: str | None
    spec: Spec
    rel: str  # "" for a single graph: its stages, manifest and report are the deployment folder's own

    @property
    def at_root(self) -> bool:
        return self.rel == ""


def in_parts(spec: Spec) -> bool:
    """The definition has several graphs or static sizes, each deployed into a folder of its own."""
    return bool(spec.graphs or spec.variants)


def expand(spec: Spec) -> list[Part]:
    """One single-graph, static-shape Spec per (graph, variant); a single graph is one part at the root,
    its definition unchanged (the stages' content keys, and so the store, are the same as ever)."""
    if not in_parts(spec):
        return [Part(spec.name, None, spec, "")]
    base = spec.model_dump(exclude=TOP_ONLY)
    graphs: list[tuple[str | None, GraphSpec | Spec, str]] = (
        [(g.name, g, f"graphs[{i}]") for i, g in enumerate(spec.graphs)] if spec.graphs else [(None, spec, "")])
    parts = []
    for gname, g, where in graphs:
        gd = g.model_dump()
        one = dict(base, entry=gd["entry"], onnx=gd["onnx"], inputs=gd["inputs"], outputs=gd["outputs"])
        for key in ("calibration", "validation", "export", "quantization"):
            if gd.get(key) is not None:
                one[key] = gd[key]
        if isinstance(g, GraphSpec):
            if g.precision:
                one["target"] = dict(base["target"], precision=g.precision)
            one["repairs"] = list(dict.fromkeys(base["repairs"] + g.repairs))
        variants = g.variants or [None]
        for j, v in enumerate(variants):
            p = dict(one, inputs=[dict(i) for i in one["inputs"]])
            if v is not None:
                known = {i["name"] for i in p["inputs"]}
                for name, shape in v.shapes.items():
                    if name not in known:
                        raise BadInput(f"{where + '.' if where else ''}variants[{j}].shapes.{name}: no input of that "
                                       f"name (inputs: {', '.join(sorted(known))})", where="aipc.yaml")
                for i in p["inputs"]:
                    i["shape"] = v.shapes.get(i["name"], i["shape"])
                if v.calibration is not None:
                    p["calibration"] = v.calibration.model_dump()
            label = ".".join(x for x in (gname, v.name if v else None) if x).lower()
            p["name"] = f"{spec.name}.{label}"
            rel = "/".join(x for x in (gname, v.name if v else None) if x)
            parts.append(Part(gname or spec.name, v.name if v else None, Spec.model_validate(p), rel))
    return parts
