"""The JSON Schema of `aipc.yaml`, generated from the pydantic schema (`bot.spec.schema`).

Why: editors that read a `# yaml-language-server: $schema=…` header validate and complete a definition
as it is typed, and CI tools can check one without the bot. The file is committed
(`schema/aipc.schema.json`) and `tests/test_json_schema.py` regenerates it from the code and compares,
so it cannot drift from what the loader accepts.

pydantic writes the types, ranges, patterns, enums and defaults. What the schema's custom validators
check in Python (positive shapes, a known SoC, exactly one of `entry`/`onnx`, …) is added here as
JSON Schema, each refinement next to the validator it mirrors, so that the schema rejects what the
loader rejects and at the same field path. Two differences remain, both pinned by the test: JSON
Schema cannot compare two values (`range: [1, 0]`, a part's `lo < hi`: the loader alone refuses
them), and pydantic's lax mode reads the text "3" (and true/false) as a number where the schema asks
for one. And the schema reports everything at once: a broken field and, beside it, a rule of the whole
definition (`(top level)`) that the loader only checks once the fields are valid.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from bot.spec.loader import field_path
from bot.spec.schema import PART_NAME, Spec
from bot.targets import SOCS

SCHEMA_FILE = "schema/aipc.schema.json"
REGENERATE = f"python -m bot.cli schema > {SCHEMA_FILE}"
SCHEMA_ID = "https://aipc.dev/schema/aipc.schema.json"  # an identifier, not fetched by anything here



def _holds(rule: dict, message: str) -> dict:
    """`rule` must hold, but a failure is reported here, at the field the Python validator names,
    not inside it (as `if`/`else` does: `if` is evaluated silently)."""
    return {"if": rule, "else": {"not": {}, "errorMessage": message}}


SHAPE_MESSAGE = "expected a list of positive integers"
# element types are pydantic's (its errors name the element); positivity is the validator's (the list)
POSITIVE_SHAPE = {"type": "array", "minItems": 1, "items": {"type": "integer"},
                  **_holds({"items": {"exclusiveMinimum": 0}}, SHAPE_MESSAGE)}
ENTRY_PATTERN = r"^$|:"  # the loader: "entry: expected 'file.py:function'" (an empty entry is no entry)


def _case_insensitive(word: str) -> str:
    """A regex matching `word` in any letter case (the loader upper-cases `target.soc`)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


def _given(field: str, non_empty: dict) -> dict:
    """`field` is present and truthy, as pydantic's `bool(self.field)` means it."""
    return {"required": [field], "properties": {field: {"not": {"type": "null"}, **non_empty}}}


EXACTLY_ONE_SOURCE = {"oneOf": [_given("entry", {"minLength": 1}), _given("onnx", {"minLength": 1})],
                      "errorMessage": "give exactly one of 'entry' (a PyTorch entry point) or 'onnx' (a file)"}


def _refine(schema: dict) -> dict:
    """Add, as JSON Schema, what `bot.spec.schema`'s validators check in Python."""
    defs = schema["$defs"]

    def prop(model: str, field: str) -> dict:
        target = schema if model == "Spec" else defs[model]
        try:
            return target["properties"][field]
        except KeyError:
            raise KeyError(f"bot/spec/json_schema.py refines {model}.{field}, which the schema no longer has; "
                           f"update the refinement") from None

    # InputSpec._positive, VariantSpec._positive: a non-empty list of positive integers
    prop("InputSpec", "shape").update(POSITIVE_SHAPE)
    shapes = prop("VariantSpec", "shapes")
    shapes["additionalProperties"] = {"type": "array", "items": {"type": "integer"}}
    shapes.update(_holds({"additionalProperties": {"minItems": 1, "items": {"exclusiveMinimum": 0}}},
                         f"every shape: {SHAPE_MESSAGE}"))
    # TargetSpec._known_soc: one of the known SoCs, any letter case
    soc = prop("TargetSpec", "soc")
    soc["pattern"] = "^(?:" + "|".join(_case_insensitive(s) for s in sorted(SOCS)) + ")$"
    soc["examples"] = sorted(SOCS)
    # OutputCheck._ranges: 0 <= lo (lo < hi cannot be said in JSON Schema; the loader says it)
    prop("OutputCheck", "parts").update(_holds({"additionalProperties": {"prefixItems": [{"minimum": 0}]}},
                                              "every part: expected [lo, hi) with 0 <= lo < hi"))
    # entry validators: 'file.py:function'
    for model in ("Spec", "GraphSpec"):
        for branch in prop(model, "entry").get("anyOf", []):
            if branch.get("type") == "string":
                branch.update(pattern=ENTRY_PATTERN, errorMessage="expected 'file.py:function'")
    # GraphSpec._one_source: exactly one of entry / onnx
    defs["GraphSpec"].update(EXACTLY_ONE_SOURCE)
    # Spec._one_source. With graphs: entry/onnx, inputs and variants belong to each graph. Without: one
    # source, at least one input, neither decode nor chain. Each is said at the top level, where the
    # loader says it (a `required` would put the error at the missing key).
    schema["if"] = _given("graphs", {"minItems": 1})
    schema["then"] = {"not": {"anyOf": [_given("entry", {"minLength": 1}), _given("onnx", {"minLength": 1}),
                                        _given("inputs", {"minItems": 1}), _given("variants", {"minItems": 1})]},
                      "errorMessage": "with 'graphs', give entry/onnx, inputs and variants per graph, not at the top"}
    # Spec._one_source: data and task are single-graph sections
    schema["then"] = {"allOf": [schema["then"], {
        "not": {"anyOf": [_given("data", {}), _given("task", {})]},
        "errorMessage": "'data' and 'task' are for single-graph definitions (not with 'graphs')"}]}
    # DataSpec._some_files: calibration and/or validation globs
    defs["DataSpec"].update(_holds({"anyOf": [_given("calibration", {"minItems": 1}),
                                              _given("validation", {"minItems": 1})]},
                                   "give 'calibration' and/or 'validation' globs"))
    # CustomMetric._bound: min and/or max (TaskSpec._unique, unique metric names, only the loader says)
    defs["CustomMetric"].update(_holds({"anyOf": [_given("min", {}), _given("max", {})]},
                                       "give 'min' and/or 'max' for a custom metric"))
    single = {"allOf": [
        EXACTLY_ONE_SOURCE,
        {"not": {"properties": {"inputs": {"type": "array", "maxItems": 0}}},
         "errorMessage": "inputs: at least one input is required"},
        {"not": {"anyOf": [_given("decode", {}), _given("chain", {})]},
         "errorMessage": "'decode' and 'chain' need 'graphs'"}]}
    # Spec._adapter_layout: a `transformers:` section alone is a whole definition (the adapter lays
    # out its entry/inputs or graphs and decode section)
    schema["else"] = {"if": _given("transformers", {}), "then": True, "else": single}
    return schema


def definition_schema() -> dict:
    """The JSON Schema (draft 2020-12) of one `aipc.yaml`."""
    schema = Spec.model_json_schema(mode="validation")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
              "title": "aipc.yaml", "description": "An AIPC bot model definition (bot/spec/schema.py). "
              f"Generated: {REGENERATE}", **{k: v for k, v in schema.items() if k != "title"}}
    # the loader fills `name` from the folder's name when the file leaves it out
    schema["required"] = [r for r in schema.get("required", []) if r != "name"]
    if not schema["required"]:
        del schema["required"]
    assert PART_NAME  # graph and variant names: pydantic already writes their pattern
    return _refine(schema)


def render() -> str:
    """The committed file's exact text."""
    return json.dumps(definition_schema(), indent=2, ensure_ascii=False) + "\n"


# ----------------------------------------------------------------- field paths, as the loader writes them


def _path(parts: Iterable[Any]) -> str:
    return field_path(tuple(parts))


def schema_errors(definition: Any, schema: dict | None = None) -> list[tuple[str, str]]:
    """(field path, message) for each way `definition` breaks the schema, the path written as the
    loader writes it (`inputs[0].shape`). `jsonschema` reports a missing or an unexpected key at the
    object that holds it, pydantic at the key itself: the key is appended so the two agree."""
    import jsonschema  # deferred: only checking a definition against the JSON schema needs it
    from jsonschema.exceptions import best_match  # deferred: only checking a definition against the JSON schema needs it

    validator = jsonschema.Draft202012Validator(schema or definition_schema())
    found: list[tuple[str, str]] = []

    def add(err) -> None:
        own_message = isinstance(err.schema, dict) and "errorMessage" in err.schema
        if err.context and err.validator in ("anyOf", "oneOf") and not own_message:
            # an Optional[...] field: every error of the branch that was meant, not 'is not null'
            meant = [e for e in err.context if not (e.validator == "type" and e.validator_value == "null")]
            if meant:
                branch = best_match(meant).relative_schema_path[0]
                for e in meant:
                    if e.relative_schema_path[0] == branch:
                        add(e)
                return
        where = list(err.absolute_path)
        if err.validator == "minItems" and isinstance(err.instance, list) and "prefixItems" in err.schema:
            # a tuple too short: pydantic names each missing element
            for k in range(len(err.instance), err.validator_value):
                found.append((_path([*where, k]), f"[{k}]: a required element"))
            return
        if err.validator == "required":
            missing = [k for k in err.validator_value if isinstance(err.instance, dict) and k not in err.instance]
            for key in missing:
                found.append((_path([*where, key]), f"{key}: a required field"))
            return
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = set(err.schema.get("properties", {}))
            for key in err.instance:
                if key not in known:
                    found.append((_path([*where, key]), f"{key}: not a field here"))
            return
        said = err.schema.get("errorMessage") if isinstance(err.schema, dict) else None
        found.append((_path(where), said or err.message))

    for err in validator.iter_errors(definition):
        add(err)
    return found
