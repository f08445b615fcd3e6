"""Shared machinery for decoding result files into RESULT_SCHEMA tables.

Result files can be large (a million lines) and odd (re-serialised nulls as ``{}``, lines of
``status_code: 0``, duplicated or unknown ids). Each provider supplies a function that turns
one parsed line into a :class:`Row`; this module streams the files, keeps going past a
broken line (it becomes a retryable row if its id can be read), and builds the table.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from ..crashpoints import reached
from ..records import RESULT_SCHEMA

_KEY_RE = re.compile(r"^r([0-9]{1,18})$")
_ID_IN_BROKEN_LINE = re.compile(rb'"custom_id"\s*:\s*"(r[0-9]{1,18})"')


@dataclass
class Row:
    custom_id: str | None
    fate: str
    text: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    finish_reason: str | None = None
    refusal: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


LineDecoder = Callable[[dict[str, Any]], Row]


def key_of(custom_id: object) -> int:
    """The request key in a custom id of ours, or -1 for an id we never sent."""
    if isinstance(custom_id, str):
        match = _KEY_RE.match(custom_id)
        if match:
            return int(match.group(1))
    return -1


def obj(value: Any) -> dict[str, Any]:
    """A dict, treating null (and a re-serialised ``{}`` or a list) as empty."""
    return value if isinstance(value, dict) else {}


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def iter_lines(paths: Sequence[Path]) -> Iterator[bytes]:
    for path in paths:
        with path.open("rb") as stream:
            for line in stream:
                if line.strip():
                    yield line


def decode_files(paths: Sequence[Path], decode_line: LineDecoder, retry_code: str) -> pa.Table:
    """Decode every line of ``paths``; a line that cannot be parsed becomes a retryable row."""
    rows: list[Row] = []
    for raw in iter_lines(paths):
        try:
            parsed = orjson.loads(raw)
            if not isinstance(parsed, dict):
                raise ValueError("not a JSON object")
            row = decode_line(parsed)
        except (ValueError, TypeError, KeyError) as exc:
            match = _ID_IN_BROKEN_LINE.search(raw)
            row = Row(
                custom_id=match.group(1).decode() if match else None,
                fate="retry",
                error_code=retry_code,
                error_message=f"the provider's result line could not be read ({exc})",
            )
        rows.append(row)
    return rows_to_table(rows)


def rows_to_table(rows: list[Row]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in RESULT_SCHEMA.names}
    for row in rows:
        columns["key"].append(key_of(row.custom_id))
        columns["fate"].append(row.fate)
        columns["text"].append(row.text)
        columns["error_code"].append(row.error_code)
        columns["error_message"].append(row.error_message)
        columns["finish_reason"].append(row.finish_reason)
        columns["refusal"].append(row.refusal)
        columns["input_tokens"].append(row.input_tokens)
        columns["output_tokens"].append(row.output_tokens)
        columns["cached_tokens"].append(row.cached_tokens)
        columns["cache_write_tokens"].append(row.cache_write_tokens)
        columns["reasoning_tokens"].append(row.reasoning_tokens)
    return pa.table(columns, schema=RESULT_SCHEMA)


def write_stream(chunks: Iterator[bytes], path: Path) -> int:
    """Stream a download to ``path`` via a temporary file; returns bytes written."""
    tmp = path.with_name(path.name + ".part")
    size = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # results are private
    with os.fdopen(fd, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
            size += len(chunk)
            reached("mid_download")
    tmp.replace(path)
    return size
