"""Structured answers: ``choices=`` labels and ``schema=`` records.

Requests ask the provider for JSON that follows a schema (OpenAI structured outputs, strict
mode whenever the schema allows it; Anthropic ``output_config.format``). Answers are parsed
once per distinct request and turned into typed columns:

* ``choices=[...]``: one Categorical column over exactly those labels. The request asks for
  ``{"label": <one of the choices>}``; a bare label in the answer is accepted too.
* ``schema=`` (pydantic model or JSON schema): each field becomes a column named
  ``{prefix}{field}`` (``prefix`` defaults to ``"{output}."``). Nested objects with declared
  properties are flattened with dots (``{output}.address.city``); arrays and free-form
  objects (no declared properties, or a recursive reference) stay whole, as Python lists and
  dicts in an object column. Strings, integers, numbers and booleans get pandas nullable
  dtypes; string enums become Categoricals over the enum values.

An answer that is not valid JSON or does not validate keeps its raw text in ``{output}_raw``
and gets a precise error; it never becomes a half-filled value.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import pandas as pd

from .errors import InputError
from .records import ResponseFormat

_NAME_RE = re.compile(r"[^a-zA-Z0-9_-]+")

# Keywords OpenAI's strict mode does not accept; a schema using them is sent with strict=False.
_NOT_STRICT = frozenset(
    {
        "not",
        "if",
        "then",
        "else",
        "dependentRequired",
        "dependentSchemas",
        "patternProperties",
        "unevaluatedProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
        "unevaluatedItems",
        "contains",
        "minContains",
        "maxContains",
        "uniqueItems",
        "minLength",
        "maxLength",
    }
)


# -- request side ----------------------------------------------------------------------------


def choices_format(choices: Iterable[object]) -> ResponseFormat:
    if isinstance(choices, str | bytes | dict) or not isinstance(choices, Iterable):
        raise InputError(
            "choices= takes a list of labels, e.g. choices=['positive', 'negative'], "
            f"got {type(choices).__name__}."
        )
    labels = list(choices)
    if not labels:
        raise InputError(
            "choices= needs a non-empty list of labels, e.g. choices=['positive', 'negative']."
        )
    bad = [c for c in labels if not isinstance(c, str) or not c]
    if bad:
        raise InputError(f"choices= labels must be non-empty strings; got {bad[0]!r}.")
    if len(set(labels)) != len(labels):
        dupes = sorted({str(c) for c in labels if labels.count(c) > 1})
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
        try:
            raw = orjson.loads(orjson.dumps(schema))  # a plain-JSON deep copy
        except TypeError as exc:
            raise InputError(
                f"schema= must be plain JSON (dicts, lists, strings, numbers): {exc}."
            ) from None
        name = str(raw.get("title") or "answer")
    else:
        raise InputError(
            "schema= takes a pydantic model class or a JSON schema dict, got "
            f"{type(schema).__name__}."
        )
    root_ref = raw.get("$ref")
    if isinstance(root_ref, str) and "properties" not in raw:
        # A recursive pydantic model: the root is a reference into $defs. Providers want an
        # object at the root, so inline it there and keep $defs for the inner references.
        rest = {k: v for k, v in raw.items() if k != "$ref"}
        raw = {**_lookup(root_ref, raw), **rest}
    props = raw.get("properties")
    if raw.get("type") != "object" or not isinstance(props, dict) or not props:
        raise InputError(
            "schema= must describe an object with properties (each becomes a column), e.g. "
            "{'type': 'object', 'properties': {'name': {'type': 'string'}}}."
        )
    strict_schema, strict = strictify(raw)
    safe_name = _NAME_RE.sub("_", name)[:64] or "answer"
    return ResponseFormat(kind="schema", name=safe_name, schema=strict_schema, strict=strict), model


def response_format_for(
    choices: Any = None, schema: Any = None, prefix: Any = None
) -> tuple[ResponseFormat | None, Any]:
    """The ResponseFormat (and pydantic model, if any) for ``choices=`` / ``schema=``."""
    if choices is not None and schema is not None:
        raise InputError(
            "Pass choices= (one label per row) or schema= (a record per row), not both."
        )
    response_format: ResponseFormat | None = None
    model = None
    if choices is not None:
        response_format = choices_format(choices)
    elif schema is not None:
        response_format, model = schema_format(schema)
    check_prefix(prefix, response_format)
    return response_format, model


def check_prefix(prefix: object, response_format: ResponseFormat | None) -> None:
    """``prefix=`` names the columns of ``schema=`` fields; anything else is a mistake."""
    if prefix is None:
        return
    if not isinstance(prefix, str):
        raise InputError(f"prefix= must be a string such as 'ticket_', got {prefix!r}.")
    if response_format is None or response_format.kind != "schema":
        raise InputError(
            "prefix= names the columns of schema= fields; pass it together with schema=."
        )


def strictify(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The schema in the shape OpenAI's strict mode needs, and whether strict mode is possible.

    Every object gets ``additionalProperties: false`` and lists all its properties as
    required; a property that was optional becomes nullable. With strict mode possible,
    ``default`` values go (the service may reject them; pydantic applies them when parsing),
    single-entry ``allOf`` wrappers are unwrapped, ``oneOf`` becomes ``anyOf`` and a ``$ref``
    with sibling keywords is inlined. Free-form objects and the keywords in ``_NOT_STRICT``
    (string lengths, ``not``, conditionals, ...) rule strict mode out: the schema is then sent
    as best effort and answers are still validated here.
    """
    out = copy.deepcopy(schema)
    possible = True
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(out.get(key), dict):
            defs.update({f"#/{key}/{name}": sub for name, sub in out[key].items()})

    def check(node: Any) -> None:
        nonlocal possible
        if isinstance(node, dict):
            if _NOT_STRICT & node.keys():
                possible = False
            if isinstance(node.get("allOf"), list) and len(node["allOf"]) != 1:
                possible = False
            extra = node.get("additionalProperties")
            if extra not in (None, False):
                possible = False
            if node.get("type") == "object" and not isinstance(node.get("properties"), dict):
                possible = False
            for value in node.values():
                check(value)
        elif isinstance(node, list):
            for value in node:
                check(value)

    check(out)

    def visit(node: Any) -> Any:
        if isinstance(node, list):
            return [visit(v) for v in node]
        if not isinstance(node, dict):
            return node
        if possible:
            if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
                rest = {k: v for k, v in node.items() if k != "allOf"}
                node = {**node["allOf"][0], **rest}
            ref = node.get("$ref")
            if isinstance(ref, str) and len(node) > 1 and ref in defs:
                rest = {k: v for k, v in node.items() if k != "$ref"}
                node = {**defs[ref], **rest}
            if "oneOf" in node and "anyOf" not in node:
                node = {("anyOf" if k == "oneOf" else k): v for k, v in node.items()}
                node.pop("discriminator", None)
            node.pop("default", None)
        node = {k: visit(v) for k, v in node.items()}
        props = node.get("properties")
        if (node.get("type") == "object" or props is not None) and isinstance(props, dict):
            required = set(node.get("required", []))
            for key, sub in props.items():
                if key not in required and not _nullable(sub):
                    props[key] = {"anyOf": [sub, {"type": "null"}]}
            node["required"] = list(props)
            node["additionalProperties"] = False
        return node

    return visit(out), possible


def _nullable(sub: Any) -> bool:
    if not isinstance(sub, dict):
        return True
    kind = sub.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    options = sub.get("anyOf") or sub.get("oneOf")
    return isinstance(options, list) and any(
        isinstance(o, dict) and o.get("type") == "null" for o in options
    )


# -- columns ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One output column of a schema: its name, where its value sits and its schema."""

    column: str
    path: tuple[str, ...]
    schema: dict[str, Any]


def schema_columns(rf: ResponseFormat, output: str, prefix: str | None = None) -> list[Field]:
    """The columns a ``schema=`` answer becomes (nested objects flattened with dots)."""
    head = f"{output}." if prefix is None else prefix
    root = rf.schema
    fields: list[Field] = []

    def walk(props: dict[str, Any], path: tuple[str, ...], seen: frozenset[str]) -> None:
        for name, sub in props.items():
            ref, leaf = _resolve(sub, root)
            inner = leaf.get("properties")
            if isinstance(inner, dict) and inner and (ref is None or ref not in seen):
                walk(inner, (*path, name), seen | ({ref} if ref else set()))
            else:
                fields.append(Field(head + ".".join((*path, name)), (*path, name), leaf))

    # A recursive model's root is one of its own $defs: references to it stay whole.
    body = {k: v for k, v in root.items() if k not in ("$defs", "definitions")}
    own = frozenset(
        f"#/{key}/{name}"
        for key in ("$defs", "definitions")
        if isinstance(root.get(key), dict)
        for name, sub in root[key].items()
        if sub == body
    )
    walk(root["properties"], (), own)
    return fields


def _resolve(sub: Any, root: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The non-null branch of a nullable wrapper, with a ``$ref`` resolved (and its name)."""
    if not isinstance(sub, dict):
        return None, {}
    options = sub.get("anyOf")
    if isinstance(options, list):
        non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        if len(non_null) == 1:
            sub = non_null[0]
    kind = sub.get("type")
    if isinstance(kind, list):
        non_null_kinds = [k for k in kind if k != "null"]
        if len(non_null_kinds) == 1:
            sub = {**sub, "type": non_null_kinds[0]}
    ref = sub.get("$ref")
    if isinstance(ref, str):
        target = _lookup(ref, root)
        rest = {k: v for k, v in sub.items() if k != "$ref"}
        return ref, {**target, **rest}
    return None, sub


def _lookup(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


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
    values_text: list[Any] = text.astype(object).tolist()  # read only where present
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
            errors.iat[i] = f"invalid_choice: {_short(label)} is not one of the choices {labels}"
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
    rows: list[Any] = [None] * len(parsed)
    for i, value in enumerate(parsed):
        if value is None or value is _NOT_JSON:
            continue
        if model is not None:
            checked, problem = _validate_model(value, model)
        else:
            checked, problem = value, validate(value, rf.schema)
        if problem:
            errors.iat[i] = f"invalid_schema: {problem}"
        else:
            rows[i] = checked
    data: dict[str, Any] = {}
    for field in schema_columns(rf, output, prefix):
        data[field.column] = _typed([_get(r, field.path) for r in rows], field.schema)
    return pd.DataFrame(data, index=errors.index), errors


def _get(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _validate_model(value: Any, model: Any) -> tuple[Any, str | None]:
    """Validate with the user's pydantic model; the JSON form of the result (defaults filled)."""
    if isinstance(value, dict):
        # Strict mode made optional fields nullable: a null there means "not given", so the
        # model's default applies rather than a validation error.
        fields = getattr(model, "model_fields", {})
        for name, info in fields.items():
            key = info.alias or name
            if value.get(key, 0) is None and not info.is_required():
                value = {k: v for k, v in value.items() if k != key}
    try:
        instance = model.model_validate(value)
    except Exception as exc:  # pydantic.ValidationError
        return None, _pydantic_message(exc)
    return instance.model_dump(mode="json", by_alias=True), None


def _pydantic_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).replace("\n", "; ")[:500]
    parts = []
    for e in errors()[:5]:
        where = ".".join(str(p) for p in e.get("loc", ())) or "(the answer)"
        parts.append(f"{where}: {e.get('msg')} (got {_short(e.get('input'))})")
    more = len(errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def validate(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> str | None:
    """The first way ``value`` breaks ``schema`` (a practical JSON Schema subset), or None."""
    return _check(value, schema, schema if root is None else root, "", 0)


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    types = _JSON_TYPES.get(kind)
    return types is None or isinstance(value, types)


def _check(value: Any, schema: Any, root: dict[str, Any], where: str, depth: int) -> str | None:
    if not isinstance(schema, dict) or depth > 64:
        return None
    at = f"field {where!r}" if where else "the answer"
    if isinstance(schema.get("$ref"), str):
        target = _lookup(schema["$ref"], root)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _check(value, {**target, **rest}, root, where, depth + 1)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            problems = [_check(value, o, root, where, depth + 1) for o in options]
            if None not in problems:
                if len(problems) == 1:
                    return problems[0]
                return f"{at} matches none of the allowed shapes, got {_short(value)}"
    for sub in schema.get("allOf") or []:
        problem = _check(value, sub, root, where, depth + 1)
        if problem:
            return problem
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else []
    if kinds and not any(_type_ok(value, k) for k in kinds):
        return f"{at} should be {' or '.join(kinds)}, got {_short(value)}"
    if "const" in schema and value != schema["const"]:
        return f"{at} should be {schema['const']!r}, got {_short(value)}"
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        return f"{at} should be one of {enum}, got {_short(value)}"
    if isinstance(value, dict):
        return _check_object(value, schema, root, where, depth)
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
            return f"{at} needs at least {schema['minItems']} item(s), got {len(value)}"
        if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
            return f"{at} allows at most {schema['maxItems']} item(s), got {len(value)}"
        for i, item in enumerate(value):
            problem = _check(item, items, root, f"{where}[{i}]", depth + 1)
            if problem:
                return problem
    elif isinstance(value, str):
        if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
            return f"{at} needs at least {schema['minLength']} character(s)"
        if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
            return f"{at} allows at most {schema['maxLength']} character(s)"
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and _search(pattern, value) is False:
            return f"{at} should match the pattern {pattern!r}, got {_short(value)}"
    elif isinstance(value, int | float) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, int | float) and value < low:
            return f"{at} should be >= {low}, got {value}"
        if isinstance(high, int | float) and value > high:
            return f"{at} should be <= {high}, got {value}"
    return None


def _search(pattern: str, value: str) -> bool | None:
    """Whether ``pattern`` matches (None when Python's re cannot read the pattern)."""
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return None


def _check_object(
    value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], where: str, depth: int
) -> str | None:
    declared = schema.get("properties")
    props: dict[str, Any] = declared if isinstance(declared, dict) else {}
    missing = [k for k in schema.get("required", []) if k not in value]
    if missing:
        inside = f" in {where!r}" if where else ""
        return f"missing field(s) {missing}{inside}"
    if schema.get("additionalProperties") is False:
        extra = [k for k in value if k not in props]
        if extra:
            inside = f" in {where!r}" if where else ""
            return f"unexpected field(s) {extra}{inside}"
    for key, sub in props.items():
        if key in value:
            problem = _check(value[key], sub, root, f"{where}.{key}" if where else key, depth + 1)
            if problem:
                return problem
    return None


_pd_array: Any = pd.array  # its stubs accept only literal dtype names


def _typed(values: list[Any], sub: dict[str, Any]) -> Any:
    kind = sub.get("type")
    enum = sub.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(e, str) for e in enum):
        return pd.Categorical(values, categories=list(dict.fromkeys(enum)))
    dtype = {"string": "string", "integer": "Int64", "number": "Float64", "boolean": "boolean"}
    chosen = dtype.get(kind) if isinstance(kind, str) else None
    if chosen == "Int64":
        values = [int(v) if isinstance(v, float) and math.isfinite(v) else v for v in values]
    if chosen is not None:
        try:
            return _pd_array(values, dtype=chosen)
        except (TypeError, ValueError, OverflowError):
            pass  # e.g. an integer beyond int64: keep the Python values
    column = pd.Series(values, dtype="object").to_numpy()
    return column


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
