"""Read `aipc.yaml` and turn every problem into a `BadInput` that names the field path.

Beyond the schema, the loader checks what a schema cannot: that the file is UTF-8 text of a sane
size, that every file the definition names lies inside the model folder (no absolute paths, no
`..`, no symlink that leaves it), that every name it uses (outputs, repairs, graphs, decode and
chain inputs/outputs, variant inputs) exists, and that the samples and calibration set it asks
for fit in memory. All of it before anything is imported, allocated or run.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from bot.adapters import ADAPTERS
from bot.errors import BadInput
from bot.spec.schema import Spec

SPEC_FILE = "aipc.yaml"
MAX_SPEC_BYTES = 1 << 20  # a definition is a page of YAML; a megabyte is a mistake (or an attack)
MAX_NODES = 100_000  # YAML values after alias expansion: refuses "billion laughs" before pydantic walks it
ITEMSIZE = {"float32": 4, "float16": 2, "int32": 4, "int64": 8, "uint8": 1, "bool": 1}
# random samples are drawn in float64 and then cast: the transient peak is 8 bytes per element
DRAW_BYTES = 8


def field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def load_spec(model_dir: str | Path) -> tuple[Spec, Path]:
    """Return the validated definition and the model folder it lives in."""
    p = Path(model_dir)
    path = p / SPEC_FILE if p.is_dir() else p
    if not path.is_file():
        raise BadInput(f"no model definition found (expected {SPEC_FILE})", where=str(path))
    folder = path.parent.resolve()
    if path.is_symlink() and not _inside(folder, path.resolve()):
        raise BadInput(f"{path.name} is a symlink to {path.resolve()}, outside the model folder", where=str(path))
    raw = _parse(path)
    raw.setdefault("name", path.parent.resolve().name.lower())
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as e:
        msgs = [f"{field_path(err['loc'])}: {err['msg'].removeprefix('Value error, ')}" for err in e.errors()]
        raise BadInput("; ".join(msgs), where=str(path)) from None
    where = str(path)
    check_paths(spec, folder, where)
    check_folder_links(folder, where)
    check_names(spec, where)
    check_sizes(spec, where)
    return spec, folder


# -- reading -------------------------------------------------------------------------------------
def _parse(path: Path) -> dict:
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise BadInput(f"the definition is {size} bytes; a model definition is at most {MAX_SPEC_BYTES} bytes",
                       where=str(path))
    data = path.read_bytes()
    if b"\x00" in data:
        raise BadInput("the definition is a binary file (it contains NUL bytes), expected YAML text", where=str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise BadInput(f"the definition is not UTF-8 text: byte 0x{data[e.start]:02x} at line {line} "
                       f"(offset {e.start}); save it as UTF-8", where=f"{path}:{line}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise BadInput(f"malformed YAML: {getattr(e, 'problem', None) or e}", where=where) from None
    except RecursionError:
        raise BadInput("malformed YAML: nested too deeply", where=str(path)) from None
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise BadInput(f"expected a mapping of fields at the top level, got {got}", where=str(path))
    if _count(raw, MAX_NODES) > MAX_NODES:
        raise BadInput(f"the definition expands to more than {MAX_NODES} values (YAML aliases repeating "
                       f"anchors?); write it out plainly", where=str(path))
    bad_keys = [k for k in raw if not isinstance(k, str)]
    if bad_keys:
        raise BadInput(f"top-level keys must be field names, got {bad_keys[:3]!r}", where=str(path))
    return raw


def _count(obj, limit: int) -> int:
    """Values in `obj` with aliases expanded (a shared list counts every time it is used); stops
    counting past `limit`, so a recursive or exponential alias costs nothing."""
    n, stack = 0, [obj]
    while stack and n <= limit:
        o = stack.pop()
        n += 1
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
    return n


# -- paths ---------------------------------------------------------------------------------------
def _inside(folder: Path, p: Path) -> bool:
    try:
        p.relative_to(folder)
        return True
    except ValueError:
        return False


def inside_folder(folder: Path, ref: str, field: str, where: str | None = None) -> Path:
    """The file `ref` names, resolved, if it stays inside the model folder; else `BadInput`.

    A definition runs code and reads data, so the files it may name are the model folder's own:
    an absolute path, a `..` or a symlink that leads out would let a definition read (or import)
    anything on the runner."""
    folder = Path(folder).resolve()
    where = where or str(folder / SPEC_FILE)
    if not ref or "\x00" in ref:
        raise BadInput(f"{field}: expected a file name, got {ref!r}", where=where)
    if os.path.isabs(ref):
        raise BadInput(f"{field}: {ref!r} is an absolute path; name a file inside the model folder "
                       f"(relative to {folder})", where=where)
    target = (folder / ref).resolve()
    if not _inside(folder, target):
        how = "a symlink that leads" if ".." not in Path(ref).parts else "a path that leads"
        raise BadInput(f"{field}: {ref!r} is {how} outside the model folder ({target}); only files inside "
                       f"{folder} may be used", where=where)
    return target


def _file_refs(spec: Spec) -> list[tuple[str, str, bool]]:
    """(field path, file, must exist now) for every file the definition names."""
    def source(prefix, s):
        out = []
        if s.entry:
            out.append((f"{prefix}entry", s.entry.partition(":")[0], True))
        if s.onnx:
            out.append((f"{prefix}onnx", s.onnx, True))
        for i, inp in enumerate(s.inputs):
            out += [(f"{prefix}inputs[{i}].files[{k}]", f, False) for k, f in enumerate(inp.files)]
        cals = [("calibration", s.calibration)] if s.calibration else []
        cals += [(f"variants[{j}].calibration", v.calibration) for j, v in enumerate(s.variants) if v.calibration]
        for name, c in cals:
            if c.generator:
                out.append((f"{prefix}{name}.generator", c.generator.partition(":")[0], True))
            out += [(f"{prefix}{name}.files[{k}]", f, False) for k, f in enumerate(c.files)]
        return out

    refs = source("", spec) if not spec.graphs else []
    for g, graph in enumerate(spec.graphs):
        refs += source(f"graphs[{g}].", graph)
    if spec.decode:
        for name in ("reference", "frontend", "samples"):
            ref = getattr(spec.decode, name)
            if ref:
                refs.append((f"decode.{name}", ref.partition(":")[0], True))
    if spec.chain:
        refs.append(("chain.reference", spec.chain.reference.partition(":")[0], True))
    if spec.transformers and spec.transformers.weights:
        refs.append(("transformers.weights", spec.transformers.weights, True))
    if spec.transformers and spec.transformers.features:
        refs.append(("transformers.features", spec.transformers.features.partition(":")[0], True))
    data, task = getattr(spec, "data", None), getattr(spec, "task", None)
    if data is not None:  # inside the folder; whether they exist is bot.datafiles' and bot.task's to say
        refs += [(f"data.{k}", getattr(data, k).partition(":")[0], False) for k in ("preprocess", "make")
                 if getattr(data, k)]
        if data.labels:
            refs.append(("data.labels", data.labels, False))
    if task is not None:
        if task.postprocess:
            refs.append(("task.postprocess", task.postprocess.partition(":")[0], False))
        refs += [(f"task.metrics[{k}].function", m.function.partition(":")[0], False)
                 for k, m in enumerate(task.metrics) if getattr(m, "function", None)]
    return refs


def check_paths(spec: Spec, folder: Path, where: str) -> None:
    for field, ref, must_exist in _file_refs(spec):
        if ref in ADAPTERS:  # an adapter's reference (`transformers:step`), not a file of the folder
            continue
        target = inside_folder(folder, ref, field, where)
        if must_exist and not target.is_file():
            raise BadInput(f"{field}: file {ref!r} not found in the model folder", where=where)


def check_folder_links(folder: Path, where: str, limit: int = 20_000) -> None:
    """Every file below the model folder is hashed into the stage keys and may be imported, so a
    symlink in it that leads outside would read (or run) a file that is not the model's."""
    n = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", ".work", ".git")]
        for name in dirs + files:
            p = Path(root) / name
            n += 1
            if n > limit:
                raise BadInput(f"the model folder holds more than {limit} files; keep the model's own files "
                               f"in it (data sets belong elsewhere)", where=str(folder))
            if p.is_symlink() and not _inside(folder, p.resolve()):
                raise BadInput(f"{p.relative_to(folder)} is a symlink to {p.resolve()}, outside the model "
                               f"folder; copy the file in instead", where=where)


# -- names ---------------------------------------------------------------------------------------
def _unknown(field: str, name: str, known, what: str) -> BadInput:
    known = sorted(known)
    return BadInput(f"{field}: no {what} named {name!r} (the definition has: {', '.join(known) or 'none'})")


def check_names(spec: Spec, where: str) -> None:
    """Every name the definition uses must exist; a typo must not be silently ignored."""
    from bot.repair.catalogue import all_repairs  # deferred: the layers contract's one exception (pyproject), only when repairs are named

    def fail(e: BadInput):
        raise BadInput(e.what, where=where) from None

    # the catalogue imports every graph rule (onnxscript, ~1 s): only a definition that names repairs pays for it
    repairs = all_repairs() if spec.repairs or any(g.repairs for g in spec.graphs) else {}
    for i, r in enumerate(spec.repairs):
        if r not in repairs:
            fail(_unknown(f"repairs[{i}]", r, repairs, "repair"))
    for g, graph in enumerate(spec.graphs):
        for i, r in enumerate(graph.repairs):
            if r not in repairs:
                fail(_unknown(f"graphs[{g}].repairs[{i}]", r, repairs, "repair"))
    sources = [("", spec)] if not spec.graphs else [(f"graphs[{g}].", s) for g, s in enumerate(spec.graphs)]
    for prefix, s in sources:
        validation = s.validation or spec.validation
        if s.outputs:
            for name in validation.outputs:
                if name != "*" and name not in s.outputs:
                    fail(_unknown(f"{prefix}validation.outputs.{name}", name, s.outputs, "output"))
        inputs = [i.name for i in s.inputs]
        with_files = [i for i in s.inputs if i.files]
        if with_files and len(with_files) != len(s.inputs):
            missing = [i.name for i in s.inputs if not i.files]
            fail(BadInput(f"{prefix}inputs: {', '.join(i.name for i in with_files)} have sample files but "
                          f"{', '.join(missing)} do not; give files for every input or for none"))
        if with_files and len({len(i.files) for i in s.inputs}) > 1:
            fail(BadInput(f"{prefix}inputs: every input needs the same number of sample files, got "
                          f"{ {i.name: len(i.files) for i in s.inputs} }"))
        for j, v in enumerate(s.variants):
            for name in v.shapes:
                if name not in inputs:
                    fail(_unknown(f"{prefix}variants[{j}].shapes.{name}", name, inputs, "input"))
    if spec.decode:
        d = spec.decode
        step = next(g for g in spec.graphs if g.name == d.step)
        ins, outs = [i.name for i in step.inputs], step.outputs
        named = [("decode.token_input", d.token_input), ("decode.position_input", d.position_input),
                 ("decode.mask_input", d.mask_input)] + [(f"decode.cache[{k}].input", c.input)
                                                         for k, c in enumerate(d.cache)]
        for field, name in named:
            if name and name not in ins:
                fail(_unknown(field, name, ins, f"input of graph {d.step!r}"))
        if outs:
            for field, name in [("decode.logits_output", d.logits_output)] + [
                    (f"decode.cache[{k}].output", c.output) for k, c in enumerate(d.cache)]:
                if name not in outs:
                    fail(_unknown(field, name, outs, f"output of graph {d.step!r}"))


def check_output_names(spec: Spec, names: list[str], shapes: dict[str, list[int]], where: str) -> None:
    """After the first forward: thresholds for outputs the model does not have, or parts that do not
    fit the output they slice, are refused (the definition may not have listed its outputs)."""
    for name, check in spec.validation.outputs.items():
        if name != "*" and name not in names:
            raise BadInput(f"validation.outputs.{name}: the model has no output of that name "
                           f"(its outputs: {', '.join(names)})", where=where)
    for name in names:
        check = spec.validation.outputs.get(name) or spec.validation.outputs.get("*")
        if not check or not check.parts:
            continue
        shape = shapes[name]
        label = f"validation.outputs.{name if name in spec.validation.outputs else '*'}"
        if not -len(shape) <= check.axis < len(shape):
            raise BadInput(f"{label}.axis: {check.axis} is not an axis of output {name!r} (shape {shape})", where=where)
        size = shape[check.axis]
        for part, (lo, hi) in check.parts.items():
            if hi > size:
                raise BadInput(f"{label}.parts.{part}: [{lo}, {hi}) does not fit output {name!r}, which has {size} "
                               f"along axis {check.axis} (shape {shape})", where=where)


# -- sizes ---------------------------------------------------------------------------------------
def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def data_budget(spec: Spec) -> int:
    """Bytes the samples and calibration set may take: the definition's `limits.data_gb`, and never
    more than half the memory this machine has free (the model and the toolchain need the rest)."""
    limit = int(spec.limits.data_gb * 2**30)
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        limit = min(limit, avail // 2)
    except (ValueError, OSError):
        pass
    return limit


def check_sizes(spec: Spec, where: str) -> None:
    """Estimate the bytes of the samples, goldens (at least as big as the inputs, for the models the
    examples deploy) and calibration set before any is allocated, and refuse past the budget."""
    budget = data_budget(spec)
    sources = [("", spec, spec.validation, spec.calibration, spec.variants)] if not spec.graphs else [
        (f"graphs[{g}].", s, s.validation or spec.validation, s.calibration or spec.calibration, s.variants)
        for g, s in enumerate(spec.graphs)]
    for prefix, s, validation, calibration, variants in sources:
        shapes_sets = [{i.name: i.shape for i in s.inputs}]
        shapes_sets += [{**shapes_sets[0], **v.shapes} for v in variants]
        for shapes in shapes_sets:
            per_sample = sum(math.prod(shape) * ITEMSIZE[i.dtype] for i in s.inputs
                             for shape in [shapes[i.name]])
            biggest = max(math.prod(shapes[i.name]) for i in s.inputs) * DRAW_BYTES
            n = validation.samples * 2 + calibration.samples  # samples + goldens (≈ inputs) + calibration
            total = per_sample * n + biggest
            if total > budget:
                first = max(s.inputs, key=lambda i: math.prod(shapes[i.name]))
                raise BadInput(
                    f"{prefix}inputs: the samples, golden outputs and calibration set would take about "
                    f"{_gib(total)} ({first.name} {shapes[first.name]} {first.dtype} is "
                    f"{_gib(math.prod(shapes[first.name]) * ITEMSIZE[first.dtype])} per sample; "
                    f"{validation.samples} validation sample(s) and their goldens, {calibration.samples} "
                    f"calibration sample(s)); the limit is {_gib(budget)} (limits.data_gb, at most half the "
                    f"free memory)", where=where)
