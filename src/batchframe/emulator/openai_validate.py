"""Validation of an OpenAI batch input file, as the service does it after create.

Problems never fail the create call: they turn the batch `failed` with `errors.data[]`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_ERRORS = 20  # the real error list is short too; a 50,000-line mess needs no more


@dataclass
class ParsedFile:
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(custom_id, body) of every line that parsed as a request."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None

    def fail(self, code: str, message: str, line: int | None = None, param: str | None = None):
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"code": code, "message": message, "param": param, "line": line})


def _check_line(parsed: ParsedFile, number: int, raw: bytes, endpoint: str, seen: set[str]):
    try:
        item = json.loads(raw)
    except ValueError:
        parsed.fail("invalid_json_line", f"Line {number} is not valid JSON.", number)
        return
    if not isinstance(item, dict):
        parsed.fail("invalid_json_line", f"Line {number} is not a JSON object.", number)
        return
    custom_id = item.get("custom_id")
    body = item.get("body")
    if not isinstance(custom_id, str) or not custom_id:
        parsed.fail(
            "missing_required_parameter",
            f"Line {number} has no custom_id string.",
            number,
            "custom_id",
        )
        return
    if item.get("method") != "POST":
        parsed.fail(
            "invalid_method",
            f"Line {number}: method must be POST, got {item.get('method')!r}.",
            number,
            "method",
        )
    if item.get("url") != endpoint:
        parsed.fail(
            "url_mismatch",
            f"Line {number}: url {item.get('url')!r} does not match the batch endpoint "
            f"{endpoint!r}.",
            number,
            "url",
        )
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        parsed.fail(
            "missing_required_parameter",
            f"Line {number}: body must be an object with a model.",
            number,
            "body.model",
        )
        return
    if custom_id in seen:
        parsed.fail(
            "duplicate_custom_id",
            f"Line {number}: custom_id {custom_id!r} appears more than once in the file.",
            number,
            "custom_id",
        )
    seen.add(custom_id)
    model = body["model"]
    if parsed.model is None:
        parsed.model = model
    elif model != parsed.model:
        parsed.fail(
            "model_mismatch",
            f"Line {number}: model {model!r} differs from {parsed.model!r}; a batch file "
            "may use only one model.",
            number,
            "body.model",
        )
    parsed.rows.append((custom_id, body))


def validate(data: bytes, endpoint: str, *, max_requests: int, max_bytes: int) -> ParsedFile:
    parsed = ParsedFile()
    lines = [(i, raw) for i, raw in enumerate(data.splitlines(), start=1) if raw.strip()]
    if not lines:
        parsed.fail("empty_file", "The input file contains no requests.")
        return parsed
    if len(data) > max_bytes:
        parsed.fail(
            "file_too_large",
            f"The input file is {len(data)} bytes; a batch file may hold at most {max_bytes}.",
        )
    if len(lines) > max_requests:
        parsed.fail(
            "too_many_tasks",
            f"The input file has {len(lines)} requests; the limit is {max_requests} per batch.",
        )
    seen: set[str] = set()
    for number, raw in lines:
        _check_line(parsed, number, raw, endpoint, seen)
    return parsed
