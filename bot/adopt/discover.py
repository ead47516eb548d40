"""Find the model in a folder and read what can be read from it, saying plainly what could not.

A model is, in this order of preference: a `.py` file's top-level function that takes no argument and
returns a `torch.nn.Module`; a `torch.nn.Module` subclass whose constructor needs no argument; an
`.onnx` file. Python files are read with `ast` first, so only files that look like they hold a model
are imported, and only zero-argument candidates are called.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import BadInput
from bot.model_code import call, load_callable
from bot.spec.schema import DType

SKIP_DIRS = {"deployments", ".git", ".venv", "venv", "__pycache__", "node_modules", ".work", "tests", "test"}
SKIP_FILES = {"setup.py", "conftest.py", "noxfile.py", "__init__.py"}
BUILDER_NAMES = ("build", "build_model", "get_model", "create_model", "make_model", "model")
# never called to find a model, whatever they return: they do work (train, export, a script's main)
NOT_BUILDERS = ("main", "train", "fit", "run", "export", "evaluate", "eval", "test", "benchmark", "download", "save")
INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")
ONNX_DTYPES: dict[int, DType] = {1: "float32", 10: "float16", 6: "int32", 7: "int64", 2: "uint8", 9: "bool"}
DTYPES = ("float32", "float16", "int32", "int64", "uint8", "bool")


@dataclass
class InputGuess:
    name: str
    shape: list[int] | None = None
    dtype: str = "float32"
    range: tuple[float, float] | None = None
    origin: str = ""  # where the name, shape and dtype came from, for the comment in aipc.yaml


@dataclass
class Found:
    """What `aipc init` learned about the model, and what it could not learn."""

    kind: str  # "function", "class" or "onnx"
    source: str  # `entry` (file.py:name) or the `onnx` file, relative to the folder
    inputs: list[InputGuess]
    outputs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was inferred, and from where
    unknown: list[str] = field(default_factory=list)  # what could not be inferred
    others: list[str] = field(default_factory=list)  # other candidates, not chosen

    @property
    def field(self) -> str:
        return "onnx" if self.kind == "onnx" else "entry"


def parse_input(text: str) -> tuple[str, list[int], str | None]:
    """`--input name=1x3x224x224` or `name=1x16:int32`."""
    name, eq, rest = text.partition("=")
    shape_text, _, dtype = rest.partition(":")
    try:
        shape = [int(d) for d in shape_text.lower().split("x")]
    except ValueError:
        shape = []
    if not eq or not name or not shape or any(d <= 0 for d in shape) or (dtype and dtype not in DTYPES):
        raise BadInput(f"--input {text!r}: expected NAME=DIMxDIM…[:DTYPE], e.g. image=1x3x224x224 or "
                       f"tokens=1x16:int32 (dtypes: {', '.join(DTYPES)})")
    return name, shape, dtype or None


# ------------------------------------------------------------------------------------- candidates


def _module_bases(tree: ast.Module) -> set[str]:
    """Names of the classes in this file that derive (directly or through each other) from nn.Module."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name not in found:
                for b in node.bases:
                    text = ast.unparse(b)
                    if text.split(".")[-1] == "Module" and ("nn" in text or text == "Module") or text in found:
                        found.add(node.name)
                        changed = True
                        break
    return found


def _no_required_args(fn: ast.FunctionDef) -> bool:
    a = fn.args
    return not a.posonlyargs[: len(a.posonlyargs) - len(a.defaults)] and \
        len(a.args) <= len(a.defaults) and all(d is not None for d in a.kw_defaults)


def _function_candidates(tree: ast.Module, classes: set[str]) -> list[str]:
    """Zero-argument functions that look like builders: annotated to return a Module, returning one of
    this file's Module classes, or named like a builder."""
    ranked = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.name.startswith("_") or not _no_required_args(node) \
                or node.name.lower().startswith(NOT_BUILDERS):
            continue
        returns = ast.unparse(node.returns) if node.returns else ""
        # `return Net(...)`, `return Net(...).eval()`: a call to one of this file's Module classes
        builds = any(isinstance(n, ast.Return) and n.value is not None and any(
            isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in classes
            for c in ast.walk(n.value)) for n in ast.walk(node))
        calls_eval = any(isinstance(n, ast.Attribute) and n.attr == "eval" for n in ast.walk(node))
        score = (3 if "Module" in returns or returns in classes else 0) + (2 if builds else 0) + (1 if calls_eval and builds else 0) + \
            (2 if node.name in BUILDER_NAMES else 0)
        if score:
            ranked.append((-score, BUILDER_NAMES.index(node.name) if node.name in BUILDER_NAMES else 99, node.name))
    return [name for *_, name in sorted(ranked)]


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py")
                  if not (set(p.relative_to(folder).parts[:-1]) & SKIP_DIRS) and p.name not in SKIP_FILES
                  and not p.name.startswith("test_"))


def candidates(folder: Path) -> list[tuple[str, str]]:
    """(kind, source) for every model-looking thing in the folder, best first."""
    functions, classes_found = [], []
    for path in _python_files(folder):
        rel = path.relative_to(folder).as_posix()
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except (SyntaxError, UnicodeDecodeError) as e:
            raise BadInput(f"cannot parse {rel}: {e}", where=str(path)) from None
        classes = _module_bases(tree)
        functions += [("function", f"{rel}:{name}") for name in _function_candidates(tree, classes)]
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name in classes:
                init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
                if init is None or _no_required_args(_drop_self(init)):
                    classes_found.append(("class", f"{rel}:{node.name}"))
    onnx = [("onnx", p.relative_to(folder).as_posix()) for p in sorted(folder.rglob("*.onnx"))
            if not (set(p.relative_to(folder).parts[:-1]) & SKIP_DIRS)]
    # a class that a builder function returns is reached through the builder; list it last
    return functions + classes_found + onnx


def _drop_self(fn: ast.FunctionDef) -> ast.FunctionDef:
    copy = ast.FunctionDef(name=fn.name, args=ast.arguments(
        posonlyargs=fn.args.posonlyargs[1:] if fn.args.posonlyargs else [],
        args=fn.args.args[1:] if not fn.args.posonlyargs else fn.args.args,
        vararg=fn.args.vararg, kwonlyargs=fn.args.kwonlyargs, kw_defaults=fn.args.kw_defaults,
        kwarg=fn.args.kwarg, defaults=fn.args.defaults), body=fn.body, decorator_list=[], returns=None)
    return copy


# ------------------------------------------------------------------------------------- reading one


def discover(folder: Path, given: dict[str, tuple[list[int], str | None]], choose: str | None = None) -> Found:
    """The model in `folder`: `choose` names one (`file.py:function`, `file.py:Class` or `file.onnx`),
    else the best candidate. `given` holds the `--input` shapes."""
    found = candidates(folder)
    if choose:
        match = [c for c in found if c[1] == choose] or (
            [("onnx", choose)] if choose.endswith(".onnx") and (folder / choose).is_file() else
            [("function", choose)] if ":" in choose and (folder / choose.partition(":")[0]).is_file() else [])
        if not match:
            raise BadInput(f"--model {choose!r} is not in {folder}",
                           hint=f"found: {', '.join(s for _, s in found) or 'nothing'}")
        pick = match[0]
    elif not found:
        raise BadInput(f"found no model in {folder}: expected a .py file with a function that returns a "
                       "torch.nn.Module (e.g. `def build(): ...`), an nn.Module subclass, or an .onnx file",
                       where=str(folder))
    else:
        pick = found[0]
    others = [s for _, s in found if s != pick[1]]
    result = _read_onnx(folder, pick[1], given) if pick[0] == "onnx" else _read_torch(folder, pick, given)
    result.others = others
    functions = [s for k, s in found if k == "function"]
    classes = [s for k, s in found if k == "class"]
    if len(functions) > 1 or (not functions and len(classes) > 1):
        result.unknown.append(
            f"whether the models here ({', '.join(functions or classes)}) are graphs deployed together: "
            "aipc init writes one graph and does not infer a decode loop or a chain; for an encoder with a "
            "KV-cache decoder step, or a chain, write `graphs:` with `decode:` or `chain:` by hand "
            "(as models/whisper_tiny/aipc.yaml does)")
    unused = set(given) - {i.name for i in result.inputs}
    if unused:
        raise BadInput(f"--input names {sorted(unused)}, which the model does not take",
                       hint=f"its inputs: {', '.join(i.name for i in result.inputs) or 'none found'}")
    return result


def _apply_given(guess: InputGuess, given: dict[str, tuple[list[int], str | None]]) -> InputGuess:
    if guess.name in given:
        shape, dtype = given[guess.name]
        guess.shape, guess.origin = shape, (guess.origin + "; " if guess.origin else "") + "shape from --input"
        if dtype:
            guess.dtype = dtype
    return guess


def _read_onnx(folder: Path, rel: str, given) -> Found:
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph

    try:
        model = onnx.load(str(folder / rel), load_external_data=False)
    except Exception as e:
        raise BadInput(f"cannot read {rel} as ONNX: {e}".split("\n")[0], where=str(folder / rel)) from None
    g = model.graph
    weights = {i.name for i in g.initializer}
    found = Found("onnx", rel, [], outputs=[o.name for o in g.output])
    found.notes.append(f"the model is {rel} (ONNX, opset "
                       f"{max((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), default='?')})")
    for i in g.input:
        if i.name in weights:
            continue
        t = i.type.tensor_type
        guess = InputGuess(i.name, origin=f"from {rel}")
        guess.dtype = ONNX_DTYPES.get(t.elem_type, "")
        if not guess.dtype:
            found.unknown.append(f"input {i.name!r} has ONNX element type {t.elem_type}, which the definition "
                                 f"cannot declare (dtypes: {', '.join(DTYPES)})")
            guess.dtype = "float32"
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim]
        if t.HasField("shape") and dims and all(d is not None for d in dims):
            guess.shape = dims
        elif i.name not in given:
            named = [d.dim_value if d.dim_value > 0 else (d.dim_param or "?") for d in t.shape.dim]
            found.unknown.append(f"input {i.name!r} has a dynamic shape {named} in {rel}: give "
                                 f"--input {i.name}=" + "x".join(str(d or 1) for d in dims))
        found.inputs.append(_apply_given(guess, given))
    found.notes.append(f"outputs {found.outputs} from {rel}")
    return found


def _read_torch(folder: Path, pick: tuple[str, str], given) -> Found:
    import torch  # deferred: torch (~1 s) only where a model is built or run


    kind, ref = pick
    fn = load_callable(folder, ref, "entry")
    module = call(folder, fn, what=f"{ref}()")
    if not isinstance(module, torch.nn.Module):
        raise BadInput(f"{ref}() returned {type(module).__name__}, not a torch.nn.Module",
                       where=str(folder / ref.partition(":")[0]))
    what = "a function returning" if kind == "function" else "the class"
    found = Found(kind, ref, [])
    found.notes.append(f"the model is {ref} ({what} {type(module).__name__}, "
                       f"{sum(p.numel() for p in module.parameters()):,} parameters)")
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    variadic = [p for p in params if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    named = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in named if p.default is p.empty]
    optional = [p for p in named if p.default is not p.empty]
    # an optional argument is an input only when --input names it (the loader passes inputs by position)
    last = max((k for k, p in enumerate(optional) if p.name in given), default=-1)
    skipped = [p.name for p in optional[: last + 1] if p.name not in given]
    if skipped:
        raise BadInput(f"--input names an optional forward argument after {skipped}, which it leaves out; "
                       "inputs are passed by position", hint=f"forward{inspect.signature(module.forward)}")
    take = required + optional[: last + 1]
    if variadic and not named:
        found.unknown.append(f"forward takes {', '.join('*' + p.name for p in variadic)}: the input names "
                             "cannot be read from its signature; give each one with --input NAME=SHAPE")
        take_names = list(given)
    else:
        take_names = [p.name for p in take]
    found.notes.append(f"inputs {take_names} from forward{inspect.signature(module.forward)}")
    for p in optional:
        if p.name not in given:
            found.notes.append(f"forward's optional argument {p.name!r} is left out (give --input "
                               f"{p.name}=SHAPE to deploy with it)")
    embed = [m.num_embeddings for m in module.modules() if isinstance(m, torch.nn.Embedding)]
    for name in take_names:
        if not INPUT_NAME.match(name):
            raise BadInput(f"the forward argument {name!r} cannot be an input name (expected {INPUT_NAME.pattern})")
        guess = _apply_given(InputGuess(name, origin="name from forward()"), given)
        if guess.shape is None:
            found.unknown.append(f"the shape of input {name!r}: PyTorch does not say it; give --input "
                                 f"{name}=1x3x224x224 (the shape you deploy at)")
        if guess.dtype.startswith(("int", "uint")) and embed:
            guess.range = (0, min(embed) - 1)
            found.notes.append(f"input {name!r}: values 0..{min(embed) - 1} from the model's nn.Embedding "
                               f"(num_embeddings={min(embed)})")
        found.inputs.append(guess)
    if not take_names:
        found.unknown.append("the model's inputs: forward takes no argument")
    found.unknown.append("what the inputs hold: calibration and validation use random values in each input's "
                         "`range` (default [0, 1]); give real files with `data:` (or `files:`, "
                         "`calibration.generator`)")
    found.unknown.append("output names: PyTorch outputs are unnamed; they are called output (or output_0, "
                         "output_1, …): rename them in `outputs:`")
    return found
