"""A deterministic instance of a JSON schema, driven by one stable hash `h` and a text.

The rule (documented in the package docstring, tests compute it): enum -> enum[h % len];
const -> const; string -> the text (cut to maxLength, padded with "." to minLength; a few
formats get fixed shapes); integer -> lo + h % (hi - lo + 1) with lo = minimum (default 0),
hi = maximum (default lo + 100); number -> the same value as a float; boolean -> h % 2 == 0;
null -> None; array -> max(minItems, 1 + h % 2) items, capped at maxItems; object -> every
property; anyOf/oneOf/type lists -> the first non-null option; allOf -> merged; $ref resolved
against the root ($defs / definitions).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

_MAX_DEPTH = 8


def stable_hash(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16)


def instance(schema: Any, h: int, text: str) -> Any:
    return _Generator(schema, h, text).make(schema, 0)


class _Generator:
    def __init__(self, root: Any, h: int, text: str) -> None:
        self.root = root
        self.h = h
        self.text = text

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        node: Any = self.root
        for part in ref.lstrip("#").split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return {}
            node = node[part]
        return node

    def make(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, dict):
            return self.text  # `true` / missing schema: anything goes
        if "$ref" in schema:
            target = self.resolve(str(schema["$ref"]))
            if depth >= _MAX_DEPTH:
                return _minimal(target)
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            merged = {**target, **rest} if isinstance(target, dict) else rest
            return self.make(merged, depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            options = schema["enum"]
            return options[self.h % len(options)]
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self.make(_first_non_null(schema[key]), depth + 1)
        if isinstance(schema.get("allOf"), list) and schema["allOf"]:
            return self.make(self.merge_all(schema), depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            non_null = [k for k in kind if k != "null"]
            kind = non_null[0] if non_null else "null"
        if kind is None:
            if "properties" in schema:
                kind = "object"
            elif "items" in schema:
                kind = "array"
        return self.by_type(kind, schema, depth)

    def merge_all(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, dict) and "$ref" in part:
                part = self.resolve(str(part["$ref"]))
            if not isinstance(part, dict):
                continue
            props = {**merged.get("properties", {}), **part.get("properties", {})}
            merged = {**part, **merged, "properties": props}
        return merged

    def by_type(self, kind: Any, schema: dict[str, Any], depth: int) -> Any:
        if kind == "object":
            props = schema.get("properties") or {}
            if depth >= _MAX_DEPTH:
                return {}
            return {name: self.make(sub, depth + 1) for name, sub in props.items()}
        if kind == "array":
            return self.array(schema, depth)
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return float(self.integer(schema))
        if kind == "boolean":
            return self.h % 2 == 0
        if kind == "null":
            return None
        return self.string(schema)

    def array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        if depth >= _MAX_DEPTH:
            return []
        n = max(int(schema.get("minItems", 0)), 1 + self.h % 2)
        if "maxItems" in schema:
            n = min(n, int(schema["maxItems"]))
        if schema.get("uniqueItems"):
            n = min(n, 1) if n else 0  # identical hashes would repeat the same item
        prefix = schema.get("prefixItems")
        items = schema.get("items", {})
        out = []
        for i in range(n):
            sub = prefix[i] if isinstance(prefix, list) and i < len(prefix) else items
            out.append(self.make(sub, depth + 1))
        return out

    def integer(self, schema: dict[str, Any]) -> int:
        lo = schema.get("minimum")
        if lo is None and "exclusiveMinimum" in schema:
            lo = _floor_int(schema["exclusiveMinimum"]) + 1
        hi = schema.get("maximum")
        if hi is None and "exclusiveMaximum" in schema:
            hi = _ceil_int(schema["exclusiveMaximum"]) - 1
        lo_i = _ceil_int(lo) if lo is not None else None
        hi_i = _floor_int(hi) if hi is not None else None
        if lo_i is None:
            lo_i = 0 if hi_i is None or hi_i >= 0 else hi_i - 100
        if hi_i is None:
            hi_i = lo_i + 100
        if hi_i < lo_i:
            return lo_i
        return lo_i + self.h % (hi_i - lo_i + 1)

    def string(self, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        if fmt == "date":
            return f"2024-01-{1 + self.h % 28:02d}"
        if fmt == "date-time":
            return f"2024-01-{1 + self.h % 28:02d}T00:00:00Z"
        if fmt == "time":
            return "12:00:00"
        if fmt == "email":
            return "user@example.com"
        if fmt in ("uri", "url"):
            return "https://example.com/"
        if fmt == "uuid":
            return str(uuid.UUID(int=self.h % (1 << 128)))
        value = self.text
        if "maxLength" in schema:
            value = value[: int(schema["maxLength"])]
        if "minLength" in schema and len(value) < int(schema["minLength"]):
            value = value + "." * (int(schema["minLength"]) - len(value))
        return value


def _first_non_null(options: list[Any]) -> Any:
    for option in options:
        if not (isinstance(option, dict) and option.get("type") == "null"):
            return option
    return {"type": "null"}


def _minimal(schema: Any) -> Any:
    """Where recursion stops: the smallest value of the schema's type."""
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    return {"object": {}, "array": [], "string": "", "integer": 0, "number": 0.0}.get(
        kind if isinstance(kind, str) else ""
    )


def _floor_int(value: Any) -> int:
    return int(value // 1)


def _ceil_int(value: Any) -> int:
    return int(-(-value // 1))
