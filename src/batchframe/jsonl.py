"""Columnar JSON lines: build one JSON document per row without a Python loop per row.

A request body is described once as a Python object in which some strings are *slots*
(``slot("part0")``). It is serialised once; the serialised text is split at the slots, and
each row's line is the literal pieces interleaved with that row's values, JSON-escaped in
bulk by pyarrow. The result is byte-for-byte what ``json.dumps(..., ensure_ascii=False,
separators=(",", ":"))`` would write for each row.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError

_SLOT = "\x00slot:{}\x00"
_SLOT_RE = re.compile(r'"\\u0000slot:([^\\"]*)\\u0000"')
# The same, inside the quotes: fill() keeps the quotes as literal text around the escaped value.
_SLOT_INSIDE_RE = re.compile(r'(?<=")\\u0000slot:([^\\"]*)\\u0000(?=")')

# JSON's mandatory escapes besides \\ and \": the control characters below U+0020.
_CONTROL_ESCAPES = {
    chr(c): {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(c, f"\\u{c:04x}")
    for c in range(0x20)
}
_ESCAPES = {"\\": "\\\\", '"': '\\"', **_CONTROL_ESCAPES}


def slot(name: str) -> str:
    """A placeholder string to put in a body template; filled per row by :func:`fill`."""
    return _SLOT.format(name)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Request parameters as plain JSON values: numpy scalars and arrays become Python ones.

    Raises InputError naming the parameter when a value cannot go into a JSON request body.
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        try:
            out[key] = _plain(value)
            json.dumps(out[key], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{key}={_short(value)} cannot be sent in a JSON request body ({exc}); pass "
                "plain numbers, strings, booleans, lists or dicts."
            ) from None
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(values: pa.Array) -> pa.Array:
    """JSON string literals (with quotes) of every element of a string array."""
    quote_mark = pa.scalar('"', pa.large_string())
    return pc.binary_join_element_wise(
        quote_mark, escape(values), quote_mark, pa.scalar("", pa.large_string())
    )


def escape(values: pa.Array) -> pa.Array:
    """The inside of a JSON string literal (no quotes) for every element of a string array."""
    out: pa.Array = values.cast(pa.large_string())
    if isinstance(out, pa.ChunkedArray):
        out = out.chunk(0) if out.num_chunks == 1 else out.combine_chunks()
    # Backslash first, so that the backslashes the other escapes add are not doubled.
    for char in sorted(_specials(out), key=lambda c: c != "\\"):
        out = pc.replace_substring(out, char, _ESCAPES[char])
    return out


def _specials(values: pa.Array) -> set[str]:
    """The characters in ``values`` that JSON must escape, found in one pass over the bytes.

    In UTF-8 every byte below 0x80 is that ASCII character, so the bytes tell exactly which
    of backslash, quote and the control characters occur; only those get a replace pass.
    """
    offsets, data = values.buffers()[1], values.buffers()[2]
    if data is None or len(values) == 0:
        return set()
    bounds = np.frombuffer(offsets, dtype=np.int64)
    lo, hi = int(bounds[values.offset]), int(bounds[values.offset + len(values)])
    raw = np.frombuffer(data, dtype=np.uint8)[lo:hi]
    found = raw[(raw < 0x20) | (raw == 0x22) | (raw == 0x5C)]
    return {chr(c) for c in np.unique(found).tolist()}


def fill(template: Any, columns: Mapping[str, pa.Array], length: int) -> pa.Array:
    """One compact JSON document per row: ``template`` with each slot replaced by a value."""
    text = dumps(template)
    # literal, name, literal, name, ..., literal; the quotes of each slot stay in the literals
    pieces = _SLOT_INSIDE_RE.split(text)
    args: list[Any] = []
    for i, piece in enumerate(pieces):
        if i % 2:
            if piece not in columns:
                raise KeyError(f"no column for slot {piece!r}")
            args.append(escape(columns[piece]))
        elif piece:
            args.append(pa.scalar(piece, pa.large_string()))
    if not any(isinstance(a, pa.Array) for a in args):
        return pa.repeat(pa.scalar(text, pa.large_string()), length)
    if len(args) == 1:
        result: pa.Array = args[0]
        return result
    return pc.binary_join_element_wise(*args, pa.scalar("", pa.large_string()))


def write_lines(stream: IO[bytes], lines: pa.Array) -> int:
    """Write each element followed by a newline; returns the bytes written."""
    return _write(stream, with_newlines(lines))


def with_newlines(lines: pa.Array) -> pa.Array:
    """The lines with a newline after each, as one array (what write_lines writes)."""
    joined = pc.binary_join_element_wise(
        lines.cast(pa.large_string()),
        pa.scalar("\n", pa.large_string()),
        pa.scalar("", pa.large_string()),
    )
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.chunk(0) if joined.num_chunks == 1 else joined.combine_chunks()
    return joined


def _write(stream: IO[bytes], joined: pa.Array) -> int:
    if len(joined) == 0:
        return 0
    offsets = joined.buffers()[1]
    data = joined.buffers()[2]
    assert offsets is not None and data is not None
    offs = np.frombuffer(offsets, dtype=np.int64)
    start, end = int(offs[joined.offset]), int(offs[joined.offset + len(joined)])
    view = memoryview(data)[start:end]
    stream.write(view)
    del view, data, offsets, joined
    # The chunk's temporaries are freed; hand their pages back so that writing a large file
    # chunk by chunk does not keep growing the process's resident memory.
    pa.default_memory_pool().release_unused()
    return end - start


def write_chunks(
    stream: IO[bytes],
    count: int,
    chunk_size: int,
    encode: Callable[[int, int], pa.Array],
    *,
    workers: int | None = None,
) -> int:
    """Write ``encode(start, stop)`` for consecutive chunks of ``count`` rows, in order.

    Chunks are encoded on a small thread pool while earlier ones are written: pyarrow, numpy
    and the file write release the GIL, so on two or more cores encoding and writing overlap.
    At most ``workers`` chunks are in flight. Returns the bytes written.
    """
    starts = range(0, count, chunk_size)

    def task(start: int) -> pa.Array:
        return with_newlines(encode(start, min(count, start + chunk_size)))

    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    if workers <= 1 or len(starts) <= 1:
        return sum(_write(stream, task(start)) for start in starts)
    written = 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batchframe-jsonl")
    try:
        queue: deque[Future[pa.Array]] = deque()
        upcoming = iter(starts)
        for start in itertools.islice(upcoming, workers):
            queue.append(pool.submit(task, start))
        while queue:
            joined = queue.popleft().result()
            following = next(upcoming, None)
            if following is not None:
                queue.append(pool.submit(task, following))
            written += _write(stream, joined)
            del joined
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return written


def byte_lengths(lines: pa.Array) -> pa.Array:
    """UTF-8 byte length of each line, plus one for its newline."""
    return pc.add(pc.binary_length(lines), 1)
