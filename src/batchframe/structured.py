"""Structured answers: ``choices=`` labels and ``schema=`` records.

Requests ask the provider for JSON that follows a schema (OpenAI structured outputs in strict
mode, Anthropic ``output_config.format``). Answers are parsed once per distinct request and
turned into typed columns:

* ``choices=[...]``: one Categorical column over exactly those labels. The request asks for
  ``{"label": <one of the choices>}``; a bare label in the answer is accepted too.
* ``schema=`` (pydantic model or JSON schema): each top-level field becomes a column named
  ``{prefix}{field}`` (``prefix`` defaults to ``"{output}."``). Strings, integers, numbers,
  booleans and enums get pandas nullable dtypes (enums become Categoricals); nested objects and
  arrays stay as Python objects (dicts and lists) in an object column, not flattened further.

An answer that is not valid JSON or does not validate keeps its raw text in ``{output}_raw``
and gets a precise error; it never becomes a half-filled value.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

import orjson
import pandas as pd

from .errors import InputError
from .records import ResponseFormat

_NAME_RE = re.compile(r"[^a-zA-Z0-9_-]+")


# -- request side ----------------------------------------------------------------------------


def choices_format(choices: Sequence[object]) -> ResponseFormat:
    labels = list(choices) if not isinstance(choices, str) else None
    if not labels:
        raise InputError("choices= needs a non-empty list of labels, e.g. choices=['positive', 'negative'].")
    if not all(isinstance(c, str) and c for c in labels):
        raise InputError("choices= labels must be non-empty strings.")
    if len(set(labels)) != len(labels):
        dupes = sorted({c for c in labels if labels.count(c) > 1})
        raise InputError(f"choices= has duplicate labels: {dupes}.")
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": labels}},
        "required": ["label"],
        "additionalProperties": False,
    }
    return ResponseFormat(kind="choices", name="choice", schema=schema, strict=True)


def schema_format(schema: Any) -> tuple[ResponseFormat, Any]:
    """A ResponseFormat from a pydantic model class or a JSON schema dict (and the model)."""
    model = None
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        model = schema
        raw = schema.model_json_schema()
        name = schema.__name__
    elif isinstance(schema, dict):
        raw = copy.deepcopy(schema)
        name = str(raw.get("title") or "answer")
    else:
        raise InputError(
            f"schema= takes a pydantic model class or a JSON schema dict, got {type(schema).__name__}."
        )
    if raw.get("type") != "object" or not isinstance(raw.get("properties"), dict) or not raw["properties"]:
        raise InputError(
            "schema= must describe an object with properties (each becomes a column), e.g. "
            "{'type': 'object', 'properties': {'name': {'type': 'string'}}}."
        )
    strict_schema, strict = strictify(raw)
    safe_name = _NAME_RE.sub("_", name)[:64] or "answer"
    return ResponseFormat(kind="schema", name=safe_name, schema=strict_schema, strict=strict), model


def strictify(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """OpenAI strict mode: every object closed and every property required (optional -> nullable).

    Returns the schema and whether strict mode is possible; free-form objects rule it out.
    """
    out = copy.deepcopy(schema)
    possible = True

    def visit(node: Any) -> None:
        nonlocal possible
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                props = node.get("properties")
                if not isinstance(props, dict):
                    possible = False
                else:
                    required = set(node.get("required", []))
                    for key, sub in props.items():
                        if key not in required:
                            props[key] = {"anyOf": [sub, {"type": "null"}]}
                    node["required"] = list(props)
                    node["additionalProperties"] = False
            for value in list(node.values()):
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(out)
    return out, possible


# -- answer side -----------------------------------------------------------------------------


def parse_answers(
    text: pd.Series,
    response_format: ResponseFormat | None,
    output: str,
    *,
    prefix: str | None = None,
    model: Any = None,
) -> tuple[pd.DataFrame, pd.Series]:
    """Values (one or more columns) and parse errors, per key. ``text`` is NA where unusable."""
    errors = pd.Series(pd.NA, index=text.index, dtype="string")
    if response_format is None:
        return pd.DataFrame({output: text.astype("string")}, index=text.index), errors
    present = text.notna().to_numpy(dtype=bool)
    parsed: list[Any] = [None] * len(text)
    values_text = text.to_numpy(dtype=object, na_value=None)
    for i in range(len(text)):  # one loop per distinct answer: JSON must be parsed per answer
        if not present[i]:
            continue
        try:
            parsed[i] = orjson.loads(values_text[i])
        except orjson.JSONDecodeError as exc:
            parsed[i] = _NOT_JSON
            errors.iat[i] = f"invalid_json: the answer is not valid JSON ({exc})"
    if response_format.kind == "choices":
        return _labels(parsed, values_text, response_format, output, errors)
    return _records(parsed, response_format, output, prefix, model, errors)


_NOT_JSON = object()


def _labels(
    parsed: list[Any], raw: Any, rf: ResponseFormat, output: str, errors: pd.Series
) -> tuple[pd.DataFrame, pd.Series]:
    labels = rf.schema["properties"]["label"]["enum"]
    allowed = set(labels)
    out: list[Any] = [None] * len(parsed)
    for i, value in enumerate(parsed):
        if value is None:
            continue
        if value is _NOT_JSON:
            bare = str(raw[i]).strip().strip('"')
            if bare in allowed:  # a model that answered with the bare label
                out[i] = bare
                errors.iat[i] = pd.NA
            continue
        label = value.get("label") if isinstance(value, dict) else value
        if isinstance(label, str) and label in allowed:
            out[i] = label
        else:
            errors.iat[i] = f"invalid_choice: {label!r} is not one of the choices {labels}"
    column = pd.Categorical(out, categories=labels)
    return pd.DataFrame({output: column}, index=errors.index), errors


def _records(
    parsed: list[Any],
    rf: ResponseFormat,
    output: str,
    prefix: str | None,
    model: Any,
    errors: pd.Series,
) -> tuple[pd.DataFrame, pd.Series]:
    props: dict[str, Any] = rf.schema["properties"]
    rows: list[dict[str, Any] | None] = [None] * len(parsed)
    for i, value in enumerate(parsed):
        if value is None or value is _NOT_JSON:
            continue
        problem = _validate(value, rf.schema, model)
        if problem:
            errors.iat[i] = f"invalid_schema: {problem}"
        else:
            rows[i] = value
    head = f"{output}." if prefix is None else prefix
    data: dict[str, Any] = {}
    for field, sub in props.items():
        column = [r.get(field) if r is not None else None for r in rows]
        data[f"{head}{field}"] = _typed(column, _unwrap_nullable(sub, rf.schema))
    return pd.DataFrame(data, index=errors.index), errors


def _validate(value: Any, schema: dict[str, Any], model: Any) -> str | None:
    if model is not None:
        try:
            model.model_validate(value)
        except Exception as exc:  # pydantic.ValidationError, kept short for a cell
            return str(exc).replace("\n", "; ")[:500]
        return None
    if not isinstance(value, dict):
        return f"expected a JSON object, got {type(value).__name__}"
    missing = [k for k in schema.get("required", []) if k not in value]
    if missing:
        return f"missing field(s) {missing}"
    for key, sub in schema["properties"].items():
        if key in value and not _type_ok(value[key], _unwrap_nullable(sub, schema)):
            return f"field {key!r} has the wrong type: {value[key]!r}"
    return None


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _type_ok(value: Any, sub: dict[str, Any]) -> bool:
    if value is None:
        return True  # nullable fields were made explicit by strictify
    kind = sub.get("type")
    if isinstance(kind, str) and kind in _JSON_TYPES:
        if kind in ("integer", "number") and isinstance(value, bool):
            return False
        if not isinstance(value, _JSON_TYPES[kind]):
            return False
    enum = sub.get("enum")
    return not (enum is not None and value not in enum)


def _unwrap_nullable(sub: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of ``anyOf: [X, null]``, with ``$ref`` resolved."""
    if "anyOf" in sub:
        options = [s for s in sub["anyOf"] if s.get("type") != "null"]
        if len(options) == 1:
            sub = options[0]
    ref = sub.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}
    return sub


def _typed(values: list[Any], sub: dict[str, Any]) -> Any:
    kind = sub.get("type")
    if isinstance(sub.get("enum"), list) and all(isinstance(e, str) for e in sub["enum"]):
        return pd.Categorical(values, categories=sub["enum"])
    dtype = {"string": "string", "integer": "Int64", "number": "Float64", "boolean": "boolean"}.get(
        kind if isinstance(kind, str) else ""
    )
    if dtype is None:
        return pd.Series(values, dtype="object").to_numpy()
    return pd.array(values, dtype=dtype)
