"""The OpenAI result decoder over whole columns: the fast path for well-formed files.

Gives the same rows as :func:`batchframe.providers.openai.decode_line`, computed with pyarrow
over a block of lines. The block is parsed by the C scanner (``_openai_scan.c``) when it was
built, else by pyarrow's JSON reader with :data:`SCHEMA`; both yield the same :class:`Leaves`
(the few values of a line the decoder reads) and :func:`decode_leaves` turns them into rows.
Lines whose meaning depends on more than those values (a ``response`` object without a
status, a Responses API body) or that the parser cannot vouch for are marked for the line
decoder. A value of an unexpected type makes pyarrow's reader reject the whole block; the
scanner marks only that line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..records import FAILED, OK, RESULT_SCHEMA, RETRY
from .decode import FastPath, Scanned, keys_of

try:  # built by setup.py where a C compiler is available
    from . import _openai_scan
except ImportError:  # pragma: no cover - exercised when the extension is not built
    _openai_scan = None  # type: ignore[assignment]

_S = pa.string()
# Free text is parsed straight into the large strings of RESULT_SCHEMA: no copy to cast.
_L = pa.large_string()
_I = pa.int64()


def _struct(**fields: pa.DataType) -> pa.StructType:
    return pa.struct(list(fields.items()))


_CHOICE = _struct(
    message=_struct(
        content=_L,
        refusal=_L,
        tool_calls=pa.list_(_struct(function=_struct(arguments=_L))),
    ),
    finish_reason=_S,
)
_USAGE = _struct(
    prompt_tokens=_I,
    completion_tokens=_I,
    prompt_tokens_details=_struct(cached_tokens=_I),
    completion_tokens_details=_struct(reasoning_tokens=_I),
)
_BODY = _struct(
    object=_S,
    # A Responses API body; only whether it is there matters (its items are not read).
    output=pa.list_(pa.struct([])),
    choices=pa.list_(_CHOICE),
    usage=_USAGE,
    error=_struct(message=_L, code=_S, type=_S),
)
SCHEMA = pa.schema(
    [
        ("custom_id", _S),
        ("response", _struct(status_code=_I, body=_BODY)),
        ("error", _struct(code=_S, message=_L)),
    ]
)

# HTTP statuses worth another attempt (besides 5xx); must match openai._RETRY_STATUS.
RETRY_STATUS = (408, 409, 429)


def _field(array: pa.Array, *path: str) -> pa.Array:
    result: pa.Array = pc.struct_field(array, list(path))
    return result


def _first(lists: pa.Array) -> pa.Array:
    """The first element of each list; null where the list is null or empty."""
    lengths = np.asarray(
        pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    )
    offsets = np.asarray(lists.offsets.to_numpy(zero_copy_only=False))[:-1]
    present = lengths > 0
    index = pa.array(np.where(present, offsets, 0), mask=~present)
    result: pa.Array = lists.values.take(index)
    return result


def _mask(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _valid(array: pa.Array) -> np.ndarray:
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _truthy(text: pa.Array) -> np.ndarray:
    """Python truthiness of an optional string: present and not empty."""
    return _mask(pc.greater(pc.binary_length(text), 0))


def _or(kind: pa.DataType, *options: tuple[np.ndarray, Any]) -> Any:
    """The first option whose mask holds, row by row (later options are the fallback)."""
    if not any(mask.any() for mask, _ in options):  # e.g. a block of answers only
        return pa.nulls(len(options[0][0]), kind)
    conditions = pc.make_struct(*[pa.array(mask) for mask, _ in options])
    return pc.case_when(conditions, *[value for _, value in options])


@dataclass(frozen=True)
class Leaves:
    """The values of a block's lines the decoder reads; null where a line lacks them."""

    key: pa.Array  # the request key in custom_id, -1 for an id we never sent
    has_response: np.ndarray  # "response" is an object
    status: pa.Array
    body_object: pa.Array
    has_output: np.ndarray  # the body carries a non-null "output" (a Responses API body)
    content: pa.Array  # of the first choice's message
    refusal: pa.Array
    arguments: pa.Array  # of the first choice's first tool call
    finish_reason: pa.Array
    prompt_tokens: pa.Array
    completion_tokens: pa.Array
    cached_tokens: pa.Array
    reasoning_tokens: pa.Array
    body_error_message: pa.Array
    body_error_code: pa.Array
    body_error_type: pa.Array
    error_code: pa.Array
    error_message: pa.Array


def leaves_of(table: pa.Table) -> Leaves:
    """The leaves of a block pyarrow's JSON reader parsed with :data:`SCHEMA`."""
    column = {name: table.column(name).combine_chunks() for name in SCHEMA.names}
    response, error = column["response"], column["error"]
    body = _field(response, "body")
    choice = _first(_field(body, "choices"))
    usage = _field(body, "usage")
    body_error = _field(body, "error")
    return Leaves(
        key=keys_of(column["custom_id"]),
        has_response=_valid(response),
        status=_field(response, "status_code"),
        body_object=_field(body, "object"),
        has_output=_valid(_field(body, "output")),
        content=_field(choice, "message", "content"),
        refusal=_field(choice, "message", "refusal"),
        arguments=_field(_first(_field(choice, "message", "tool_calls")), "function", "arguments"),
        finish_reason=_field(choice, "finish_reason"),
        prompt_tokens=_field(usage, "prompt_tokens"),
        completion_tokens=_field(usage, "completion_tokens"),
        cached_tokens=_field(usage, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=_field(usage, "completion_tokens_details", "reasoning_tokens"),
        body_error_message=_field(body_error, "message"),
        body_error_code=_field(body_error, "code"),
        body_error_type=_field(body_error, "type"),
        error_code=_field(error, "code"),
        error_message=_field(error, "message"),
    )


def decode_table(table: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """RESULT_SCHEMA rows for a block pyarrow parsed, and the rows to decode line by line."""
    return decode_leaves(leaves_of(table))


def scan_block(block: bytearray, size: int) -> Scanned:
    """Decode ``block[:size]`` with the C scanner: rows, lines to redo, each line's bounds."""
    assert _openai_scan is not None
    scanned = _openai_scan.scan(memoryview(block)[:size])
    n = scanned["rows"]

    def text(offsets: bytes, data: bytes, valid: bytes, width: int) -> pa.Array:
        kind = pa.StringArray if width == 4 else pa.LargeStringArray
        array: pa.Array = kind.from_buffers(
            n, pa.py_buffer(offsets), pa.py_buffer(data), pa.py_buffer(valid)
        )
        return array

    def integer(values: bytes, valid: bytes) -> pa.Array:
        return pa.Array.from_buffers(_I, n, [pa.py_buffer(valid), pa.py_buffer(values)])

    def flags(name: str) -> np.ndarray:
        return np.frombuffer(scanned[name], dtype=np.bool_)

    # The scanner names its leaves as Leaves does.
    leaves = Leaves(
        key=pa.array(np.frombuffer(scanned["key"], dtype=np.int64)),
        has_response=flags("has_response"),
        has_output=flags("has_output"),
        **{name: text(*buffers) for name, buffers in scanned["strings"].items()},
        **{name: integer(*buffers) for name, buffers in scanned["integers"].items()},
    )
    table, slow = decode_leaves(leaves)
    starts = np.frombuffer(scanned["starts"], dtype=np.int64)
    stops = np.frombuffer(scanned["ends"], dtype=np.int64)
    return Scanned(table, slow | flags("slow"), starts, stops)


def decode_leaves(leaves: Leaves) -> tuple[pa.Table, np.ndarray]:
    """RESULT_SCHEMA rows for a block's leaves, and the rows to decode line by line instead."""
    n = len(leaves.key)
    has_response = leaves.has_response
    has_status = _valid(leaves.status)
    status = np.asarray(pc.fill_null(leaves.status, 0).to_numpy(zero_copy_only=False))

    # A response object without a status is either {} (never run) or a real response with
    # a missing status; only the line decoder can tell them apart.
    slow = has_response & ~has_status
    answered = has_response & has_status & (status == 200)
    responses_body = _mask(pc.equal(leaves.body_object, "response")) | leaves.has_output
    slow |= answered & responses_body
    not_run = ~has_response
    empty = has_response & has_status & (status == 0)
    http_error = has_response & has_status & (status != 200) & (status != 0)
    retryable = http_error & (np.isin(status, RETRY_STATUS) | (status >= 500))

    fate_code = np.where(answered, 0, np.where(http_error & ~retryable, 1, 2)).astype(np.int8)
    fate = pa.DictionaryArray.from_arrays(pa.array(fate_code), pa.array([OK, FAILED, RETRY]))

    # Errors: the request never ran, an empty line (status 0), or an HTTP error.
    run_code, run_message = leaves.error_code, leaves.error_message
    http_code, http_type = leaves.body_error_code, leaves.body_error_type
    http_message = leaves.body_error_message
    status_text = pc.cast(pa.array(status), _S)
    error_code = _or(
        _S,
        (not_run & _truthy(run_code), run_code),
        (not_run, pa.scalar("not_run", _S)),
        (empty, pa.scalar("empty_response", _S)),
        (http_error & _truthy(http_code), http_code),
        (http_error & _truthy(http_type), http_type),
        (http_error, pc.binary_join_element_wise("http_", status_text, "")),
    )
    error_message = _or(
        _L,
        (not_run & _truthy(run_message), run_message),
        (not_run, pa.scalar("the request was not run", _L)),
        (
            empty,
            pa.scalar(
                "the provider returned an empty result line (status_code 0); it will be retried",
                _L,
            ),
        ),
        (http_error & _truthy(http_message), http_message),
        (http_error, pc.binary_join_element_wise("HTTP ", status_text, "").cast(_L)),
    )

    # Answers: the first choice's message (or its first tool call's arguments).
    only_answers = pa.array(answered)
    all_answered, none_answered = bool(answered.all()), not answered.any()

    def answered_only(values: pa.Array) -> pa.Array:
        # Output files hold answers only and error files none: skip the row-wise choice.
        if all_answered:
            return values
        if none_answered:
            return pa.nulls(n, values.type)
        return pc.if_else(only_answers, values, pa.nulls(n, values.type))

    columns = {
        "key": leaves.key,
        "fate": fate,
        "text": answered_only(pc.coalesce(leaves.content, leaves.arguments)),
        "error_code": error_code,
        "error_message": error_message,
        "finish_reason": answered_only(leaves.finish_reason),
        "refusal": answered_only(leaves.refusal),
        "input_tokens": answered_only(leaves.prompt_tokens),
        "output_tokens": answered_only(leaves.completion_tokens),
        "cached_tokens": answered_only(leaves.cached_tokens),
        "cache_write_tokens": pa.nulls(n, _I),
        "reasoning_tokens": answered_only(leaves.reasoning_tokens),
    }
    arrays = [pc.cast(columns[field.name], field.type) for field in RESULT_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=RESULT_SCHEMA), slow


# pyarrow's JSON reader: the fallback where the scanner is not built.
PYARROW_PATH = FastPath(schema=SCHEMA, decode=decode_table)
# The scanner where it is built.
SCANNER_PATH = (
    FastPath(schema=SCHEMA, decode=decode_table, scan=scan_block) if _openai_scan else None
)
FAST_PATH = SCANNER_PATH or PYARROW_PATH
