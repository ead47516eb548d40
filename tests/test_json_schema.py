"""The committed JSON Schema of aipc.yaml: the same as the code generates, accepts every definition the
project ships (models/, the benchmarks), and rejects malformed ones at the field paths the loader gives."""

from __future__ import annotations

import copy
import itertools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from bot.errors import BadInput
from bot.spec import load_spec
from bot.spec.json_schema import REGENERATE, SCHEMA_FILE, render, schema_errors
from bot.spec.loader import field_path
from bot.spec.schema import Spec

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / SCHEMA_FILE


def committed() -> dict:
    return json.loads(COMMITTED.read_text())


def test_committed_schema_is_what_the_code_generates():
    assert COMMITTED.exists(), f"{SCHEMA_FILE} is missing; generate it with: {REGENERATE}"
    assert COMMITTED.read_text() == render(), (
        f"{SCHEMA_FILE} is out of date with bot/spec/schema.py; regenerate it with: {REGENERATE}")


def test_the_cli_prints_the_same_schema():
    p = subprocess.run([sys.executable, "-m", "bot.cli", "schema"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout == render()


def test_it_is_a_valid_draft_2020_12_schema():
    schema = committed()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema")
    assert "name" not in schema.get("required", [])  # the loader fills it from the folder's name


# ---------------------------------------------------------------- accepts what the project ships


def shipped_definitions() -> list[tuple[str, dict]]:
    found = [(str(p.relative_to(ROOT)), yaml.safe_load(p.read_text()))
             for p in sorted((ROOT / "models").glob("*/aipc.yaml"))]
    found += [(str(p.relative_to(ROOT)), yaml.safe_load(p.read_text()))
              for p in sorted((ROOT / "bench").rglob("aipc.yaml"))]
    # the zoo benchmark writes one definition per model from bench/zoo.py's definition()
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        zoo = _module(ROOT / "bench" / "zoo.py")
        zoo_models = _module(ROOT / "bench" / "zoo_models.py")
        found += [(f"bench/zoo.py:{name}", zoo.definition(name, shape)) for name, (shape, _) in zoo_models.zoo().items()]
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return found


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(f"_schema_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHIPPED = shipped_definitions()


def test_there_is_something_to_check():
    assert len([n for n, _ in SHIPPED if n.startswith("models/")]) >= 7
    assert len([n for n, _ in SHIPPED if n.startswith("bench/")]) >= 10


@pytest.mark.parametrize("where,definition", SHIPPED, ids=[n for n, _ in SHIPPED])
def test_accepts_every_shipped_definition(where, definition):
    assert schema_errors(definition, committed()) == []
    Spec.model_validate({"name": "x", **definition})  # and the loader accepts it too


# ---------------------------------------------------------------- rejects what the loader rejects

BASE = {"name": "m", "entry": "model.py:build", "inputs": [{"name": "x", "shape": [1, 3, 8, 8]}]}
GRAPHS = {"name": "m", "graphs": [{"name": "g", "entry": "model.py:build", "inputs": [{"name": "x", "shape": [1, 4]}]}]}


def edit(base: dict, **changes) -> dict:
    """`base` with dotted-path changes (`inputs.0.shape=[...]`); a value of DELETE removes the key."""
    out = copy.deepcopy(base)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = out
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if value is DELETE:
            del node[int(last) if isinstance(node, list) else last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return out


DELETE = object()

MALFORMED = {
    "negative dimension": edit(BASE, inputs__0__shape=[1, -3, 8]),
    "empty shape": edit(BASE, inputs__0__shape=[]),
    "shape not a list": edit(BASE, inputs__0__shape="1x3x8x8"),
    "input without a name": edit(BASE, inputs__0__name=DELETE),
    "input name with a space": edit(BASE, inputs__0__name="an image"),
    "unknown dtype": edit(BASE, inputs__0__dtype="float64"),
    "range of three": edit(BASE, inputs__0__range=[0, 1, 2]),
    "range not numbers": edit(BASE, inputs__0__range=[0, "high"]),
    "typo at the top": edit(BASE, validaton={"samples": 2}),
    "typo in an input": edit(BASE, inputs__0__shap=[1]),
    "unknown soc": edit(BASE, target={"soc": "SM0000"}),
    "unknown precision": edit(BASE, target={"precision": "int4"}),
    "unknown runtime": edit(BASE, target={"runtime": "tflite"}),
    "calibration samples zero": edit(BASE, calibration={"samples": 0}),
    "calibration method": edit(BASE, calibration={"method": "kl"}),  # mse is a method now
    "quantization override precision": edit(BASE, quantization={"overrides": {"y": "int4"}}),
    "quantization per_channel": edit(BASE, quantization={"per_channel": "sometimes"}),
    "cosine above one": edit(BASE, validation={"outputs": {"y": {"cosine_min": 1.5}}}),
    "topk zero": edit(BASE, validation={"outputs": {"y": {"topk": 0}}}),
    "part negative": edit(BASE, validation={"outputs": {"y": {"parts": {"a": [-1, 4]}}}}),
    "validation samples": edit(BASE, validation={"samples": 1000}),
    "opset too low": edit(BASE, export={"opset": 9}),
    "exporter": edit(BASE, export={"exporter": "jit"}),
    "negative budget": edit(BASE, limits={"llm_budget_usd": -1}),
    "attempts a word": edit(BASE, limits={"repair_attempts": "many"}),
    "api key env lowercase": edit(BASE, llm={"api_key_env": "my_key"}),
    "bad model name": edit(BASE, name="My Model"),
    "entry without a function": edit(BASE, entry="model.py"),
    "entry and onnx": edit(BASE, onnx="model.onnx"),
    "neither entry nor onnx": edit(BASE, entry=DELETE),
    "no inputs": edit(BASE, inputs=DELETE),
    "empty inputs": edit(BASE, inputs=[]),
    "inputs a mapping": edit(BASE, inputs={"x": [1, 3]}),
    "decode without graphs": edit(BASE, decode={"step": "s", "cache": [{"input": "k", "output": "k2"}],
                                                "prompts": [[1]], "reference": "model.py:greedy"}),
    "variant shape negative": edit(BASE, variants=[{"name": "v", "shapes": {"x": [1, 0, 8, 8]}}]),
    "variant bad name": edit(BASE, variants=[{"name": "-v", "shapes": {"x": [1, 3, 8, 8]}}]),
    "graphs and a top-level entry": edit(GRAPHS, entry="model.py:build"),
    "graph without a source": edit(GRAPHS, graphs__0__entry=DELETE),
    "graph entry without a function": edit(GRAPHS, graphs__0__entry="model.py"),
    "graph without inputs": edit(GRAPHS, graphs__0__inputs=[]),
    "graph precision": edit(GRAPHS, graphs__0__precision="int8"),
    "graph calibration samples": edit(GRAPHS, graphs__0__calibration={"samples": -1}),
    "decode without cache": edit(GRAPHS, decode={"step": "g", "cache": [], "prompts": [[1]],
                                                 "reference": "model.py:greedy"}),
    "data without files": edit(BASE, data={"preprocess": "prep.py:preprocess"}),
    "data preprocess without a function": edit(BASE, data={"preprocess": "prep.py", "validation": ["v/*"]}),
    "data glob not a list": edit(BASE, data={"preprocess": "prep.py:preprocess", "validation": "v/*"}),
    "task without metrics": edit(BASE, task={"postprocess": "post.py:answer", "metrics": []}),
    "task postprocess without a function": edit(BASE, task={"postprocess": "post.py", "metrics": [{"kind": "label"}]}),
    "graphs and data": edit(GRAPHS, data={"preprocess": "prep.py:preprocess", "validation": ["v/*"]}),
    "top level a list": [BASE],
}


def loader_paths(definition) -> set[str]:
    """The field paths the loader names: the pydantic errors, as `bot.spec.loader` writes them."""
    try:
        Spec.model_validate(definition)
    except ValidationError as e:
        return {field_path(err["loc"]) for err in e.errors()}
    return set()


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_rejects_a_malformed_definition_at_the_loaders_field_path(case, tmp_path):
    definition = MALFORMED[case]
    expected = loader_paths(definition)
    if not isinstance(definition, dict):
        expected = {"(top level)"}  # the loader refuses a non-mapping before pydantic sees it
    assert expected, f"{case}: the loader accepts this definition, so it is not a malformed case"
    # the loader's own message names every one of those paths
    (tmp_path / "model.py").write_text("def build():\n    pass\n")
    (tmp_path / "aipc.yaml").write_text(yaml.safe_dump(definition))
    with pytest.raises(BadInput) as raised:
        load_spec(tmp_path)
    for path in expected - {"(top level)"}:
        assert path in str(raised.value), (case, path, str(raised.value))
    got = {path for path, _ in schema_errors(definition, committed())}
    assert got == expected, f"{case}: schema says {sorted(got)}, loader says {sorted(expected)}"


def test_schema_errors_is_not_vacuous():
    """The comparison above could pass by both sides being empty; a valid definition gives none and
    a broken one gives the path."""
    assert schema_errors(BASE, committed()) == []
    assert [p for p, _ in schema_errors(edit(BASE, inputs__0__shape=[0]), committed())] == ["inputs[0].shape"]


def test_the_known_differences_from_the_loader_are_what_the_module_says():
    """JSON Schema cannot compare two values of one definition, so an ordered range or part is the
    loader's alone; and pydantic reads "3" as 3 where the schema wants a number. Both are stated in
    bot/spec/json_schema.py; this pins them, so a change on either side shows up here."""
    schema = committed()
    reversed_range = edit(BASE, inputs__0__range=[1.0, 0.0])
    assert schema_errors(reversed_range, schema) == [] and loader_paths(reversed_range) == {"inputs[0].range"}
    reversed_part = edit(BASE, validation={"outputs": {"y": {"parts": {"a": [4, 2]}}}})
    assert schema_errors(reversed_part, schema) == []
    assert loader_paths(reversed_part) == {"validation.outputs.y.parts"}
    numeric_text = edit(BASE, calibration={"samples": "3"})
    assert loader_paths(numeric_text) == set()  # pydantic's lax mode
    assert [p for p, _ in schema_errors(numeric_text, schema)] == ["calibration.samples"]


# one field at a time, every field the loader checks, set to each value of a fixed hostile list
MUTATED = [("inputs", 0, "name"), ("inputs", 0, "shape"), ("inputs", 0, "dtype"), ("inputs", 0, "range"),
           ("inputs", 0, "files"), ("inputs", 0, "layout"), ("calibration", "samples"), ("calibration", "generator"),
           ("calibration", "files"), ("calibration", "method"), ("target", "soc"), ("target", "precision"),
           ("target", "runtime"), ("validation", "samples"), ("validation", "outputs"), ("validation", "seed"),
           ("limits", "repair_attempts"), ("export", "opset"), ("export", "exporter"), ("name",), ("entry",),
           ("outputs",), ("repairs",), ("llm",), ("decode",), ("data",), ("task",), ("graphs",), ("variants",),
           ("chain",)]
HOSTILE = [None, True, False, -1, 0, 1, 1.5, 10**12, "x", "3", "", [], {}, [1, -1], [0.5], {"a": 1}, float("nan")]


def _mutated(path: tuple, value) -> dict:
    out = copy.deepcopy(BASE)
    node = out
    for p in path[:-1]:
        node = node[p] if isinstance(p, int) else node.setdefault(p, {})
    node[path[-1]] = value
    return out


def test_one_field_at_a_time_the_schema_and_the_loader_agree():
    """510 definitions, each one field set to a hostile value. Where the loader refuses, the schema
    refuses at every path the loader names (plus, at most, a rule of an enclosing object the loader
    checks only once its fields are valid); where the loader accepts, so does the schema, except the
    two documented differences (lax numbers, an unordered range)."""
    schema = committed()
    only_loader, only_schema = [], []
    for path, value in itertools.product(MUTATED, HOSTILE):
        definition = _mutated(path, value)
        loader = loader_paths(definition)
        got = {p for p, _ in schema_errors(definition, schema)}
        if loader and not got:
            only_loader.append((path, value))
        elif loader:
            enclosing = {g for g in got - loader
                         if g == "(top level)" or any(p.startswith((g + ".", g + "[")) for p in loader)}
            assert loader <= got and got - loader == enclosing, (path, value, sorted(loader), sorted(got))
        elif got:
            only_schema.append((path, value))
    assert only_loader == [(("inputs", 0, "range"), [1, -1])]  # low > high: JSON Schema cannot compare
    assert only_schema and all(isinstance(v, bool) or v == "3" for _, v in only_schema)  # lax numbers
    assert {p[-1] for p, _ in only_schema} == {"samples", "seed", "repair_attempts"}


# ------------------------------------------------- the reliability fuzz test's malformed definitions

from hypothesis import HealthCheck, example, given, settings  # noqa: E402  (kept beside the test that needs it)

from test_fuzz import missing_or_unknown, wrong_type  # noqa: E402  (tests/ is on sys.path under pytest)

FUZZ_EXAMPLES = int(os.environ.get("AIPC_FUZZ_EXAMPLES", "120"))


def _lax_number(value) -> bool:
    """What pydantic's lax mode takes for a number and JSON Schema does not: a bool, a numeric string,
    a float with no fraction (the documented difference in bot/spec/json_schema.py)."""
    if isinstance(value, bool):
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf")) and value.is_integer()
    if isinstance(value, str):
        try:
            float(value.strip())
            return True
        except ValueError:
            return False
    return False


def _leaf_values(definition, path: str):
    """The values at `path` ("calibration.samples") in a definition, as the fuzz case set them."""
    node = definition
    for part in path.replace("[", ".").replace("]", "").split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _range_of_three_nones():
    from test_fuzz import Case

    case = Case("wrong type")
    case.spec["inputs"][0]["range"] = [None, None, None]  # found by hypothesis: the schema also names range[0]
    return case


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@example(case=_range_of_three_nones())
@given(case=wrong_type() | missing_or_unknown())
def test_the_fuzz_tests_malformed_definitions_are_refused_at_the_loaders_field_paths(case):
    """The definitions tests/test_fuzz.py throws at `aipc deploy` (wrong types anywhere, missing and
    unknown fields): wherever the loader refuses one, the committed schema refuses it at every field
    path the loader names (plus, at most, an enclosing object or items of a field both refuse); where
    they disagree it is one of the
    two documented differences — a lax number, or a range whose ends are out of order."""
    definition = case.spec
    loader = loader_paths(definition)
    got = {p for p, _ in schema_errors(definition, committed())}
    if loader:
        assert got, f"{case.label}: the loader refuses at {sorted(loader)}, the schema accepts {definition}"
        enclosing = {g for g in got - loader
                     if g == "(top level)" or any(p.startswith((g + ".", g + "[")) for p in loader)}
        # inside a field both refuse, the schema may also name its items (`range` too long, and its
        # `range[0]` not a number: pydantic stops at the length)
        inside = {g for g in got - loader if any(g.startswith((p + ".", p + "[")) for p in loader)}
        # a lax number beside the real fault: the schema names that field too, the loader does not
        lax = {g for g in got - loader - enclosing - inside if _lax_number(_leaf_values(definition, g))}
        assert loader <= got and got - loader - lax - inside == enclosing, (case.label, sorted(loader), sorted(got))
    elif got:
        assert all(_lax_number(_leaf_values(definition, g)) or g.endswith("range") for g in got), \
            (case.label, sorted(got), definition)
