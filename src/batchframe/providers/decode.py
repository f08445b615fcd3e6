"""Shared machinery for decoding result files into RESULT_SCHEMA tables.

Result files can be large (a million lines) and odd (re-serialised nulls as ``{}``, lines of
``status_code: 0``, duplicated or unknown ids). Each provider supplies a function that turns
one parsed line into a :class:`Row`; this module streams the files, keeps going past a
broken line (it becomes a retryable row if its id can be read), and builds the table.

A provider may also supply a :class:`FastPath`: a columnar decoder over pyarrow's JSON
reader, or over its own scanner of a block. Files are read in blocks of whole lines; a block
that is plainly well formed goes through the columnar decoder, and everything the fast path
cannot vouch for (a block pyarrow rejects, a line that is not a lone object, invalid UTF-8,
tokens orjson refuses but pyarrow accepts, lines the provider or its scanner marks as
ambiguous) is decoded line by line exactly as before. The result is the same table either
way; the fast path only makes it quicker.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from ..crashpoints import reached
from ..records import RESULT_SCHEMA

_KEY_RE = re.compile(r"^r([0-9]{1,18})$")
_ID_IN_BROKEN_LINE = re.compile(rb'"custom_id"\s*:\s*"(r[0-9]{1,18})"')

# Bytes read per block; a block ends at a line end, so a longer line makes a longer block.
BLOCK_BYTES = 32 * 1024 * 1024
# Nesting orjson refuses (it stops at 1024 levels); pyarrow accepts deeper documents.
_MAX_DEPTH = 1024
# Tokens pyarrow's parser accepts and orjson (like the JSON standard) does not.
_NON_JSON_TOKENS = (b"NaN", b"Infinity")


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


class Scanned(NamedTuple):
    """A block decoded by a scanner: a row per non-blank line, in order."""

    table: pa.Table  # RESULT_SCHEMA
    slow: np.ndarray  # rows to decode line by line instead
    starts: np.ndarray  # each row's line: block[starts[i]:stops[i]], with its newline
    stops: np.ndarray


@dataclass(frozen=True)
class FastPath:
    """A columnar decoder for well-formed blocks of result lines.

    ``schema`` names every field ``decode`` reads (pyarrow parses only these, with these
    types; a value of another type makes pyarrow reject the block, which is then decoded
    line by line). ``decode`` returns the RESULT_SCHEMA table for the block and a boolean
    mask of rows it cannot decode with certainty; those lines go through the line decoder.
    ``scan``, where given, replaces pyarrow's reader and ``decode`` for a whole block.
    """

    schema: pa.Schema
    decode: Callable[[pa.Table], tuple[pa.Table, np.ndarray]]
    scan: Callable[[bytearray, int], Scanned] | None = None


def key_of(custom_id: object) -> int:
    """The request key in a custom id of ours, or -1 for an id we never sent."""
    if isinstance(custom_id, str):
        match = _KEY_RE.match(custom_id)
        if match:
            return int(match.group(1))
    return -1


def keys_of(custom_ids: pa.Array) -> pa.Array:
    """:func:`key_of` over a string array (nulls and ids we never sent become -1)."""
    # Python's "$" also matches before one trailing newline; so does "\n?$" here.
    digits = pc.extract_regex(custom_ids, r"^r(?P<k>[0-9]{1,18})\n?$")
    keys = pc.cast(pc.struct_field(digits, "k"), pa.int64())
    return pc.fill_null(keys, -1)


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


def decode_files(
    paths: Sequence[Path],
    decode_line: LineDecoder,
    retry_code: str,
    fast: FastPath | None = None,
) -> pa.Table:
    """Decode every line of ``paths``; a line that cannot be parsed becomes a retryable row."""
    if fast is None:
        return rows_to_table(
            [_decode_one(raw, decode_line, retry_code) for raw in iter_lines(paths)]
        )
    # Blocks are decoded on a small thread pool (pyarrow and numpy release the GIL), while
    # the next block is read; results are kept in file order.
    workers = max(1, min(2, os.cpu_count() or 1))
    if sum(path.stat().st_size for path in paths) <= BLOCK_BYTES:
        workers = 1  # one block or so: a pool would only add its start-up
    free = [bytearray(min(BLOCK_BYTES, _largest(paths) + 1)) for _ in range(workers + 1)]
    local = threading.local()
    # pyarrow's own threads only help when our workers leave cores idle (a small file, or
    # more cores than workers); otherwise they only add scheduling.
    threads = (os.cpu_count() or 1) > workers

    def decode(data: bytearray, size: int) -> pa.Table:
        scratch = getattr(local, "scratch", None)
        if scratch is None:
            scratch = local.scratch = _Scratch()
        table = _decode_block(data, size, fast, decode_line, retry_code, scratch, threads)
        if table is None:
            lines = _block_lines(data, size)
            table = rows_to_table([_decode_one(raw, decode_line, retry_code) for raw in lines])
        return table

    tables: list[pa.Table] = []
    pending: deque[tuple[Future[pa.Table], bytearray]] = deque()
    with _Pool(workers) as pool:

        def collect() -> None:
            done, buffer = pending.popleft()
            tables.append(done.result())
            free.append(buffer)

        for path in paths:
            with path.open("rb") as stream:
                while True:
                    if not free:
                        collect()
                    buffer = free.pop()
                    block = _read_block(stream, buffer)
                    if block is None:
                        free.append(buffer)
                        break
                    data, size = block
                    pending.append((pool.submit(decode, data, size), data))
        while pending:
            collect()
    if not tables:
        return rows_to_table([])
    return pa.concat_tables(tables)


def _decode_one(raw: bytes, decode_line: LineDecoder, retry_code: str) -> Row:
    try:
        parsed = orjson.loads(raw)
        if not isinstance(parsed, dict):
            raise ValueError("not a JSON object")
        return decode_line(parsed)
    except (ValueError, TypeError, KeyError) as exc:
        match = _ID_IN_BROKEN_LINE.search(raw)
        return Row(
            custom_id=match.group(1).decode() if match else None,
            fate="retry",
            error_code=retry_code,
            error_message=f"the provider's result line could not be read ({exc})",
        )


def _largest(paths: Sequence[Path]) -> int:
    return max((path.stat().st_size for path in paths), default=0)


class _Pool(ThreadPoolExecutor):
    """A thread pool, or with one worker a plain call in the caller's thread."""

    def __init__(self, workers: int) -> None:
        super().__init__(max_workers=workers, thread_name_prefix="batchframe-decode")
        self._inline = workers == 1

    def submit(self, fn, /, *args, **kwargs):
        if not self._inline:
            return super().submit(fn, *args, **kwargs)
        done: Future[Any] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            done.set_exception(exc)
        return done


def _read_block(stream: io.BufferedReader, data: bytearray) -> tuple[bytearray, int] | None:
    """The next block of whole lines from ``stream`` into ``data``: ``(data, size)``.

    The block is ``data[:size]``; a partial line at its end is left for the next block (the
    stream is moved back to its start). The last block may lack its final newline. A line
    longer than ``data`` gets a bigger buffer. None at the end of the stream.
    """
    while True:
        position = stream.tell()
        size = stream.readinto(data)
        if not size:
            return None
        cut = data.rfind(b"\n", 0, size) + 1
        if cut == 0 and size == len(data):  # a line longer than the buffer
            data = bytearray(2 * len(data))
            stream.seek(position)
            continue
        if 0 < cut < size:
            stream.seek(position + cut)
            size = cut
        return data, size


def _block_lines(block: bytearray, size: int) -> Iterator[bytes]:
    """The non-blank lines of ``block[:size]``, each with its newline, as iter_lines yields."""
    start = 0
    while start < size:
        end = block.find(b"\n", start, size)
        end = size if end < 0 else end + 1
        line = bytes(block[start:end])
        if line.strip():
            yield line
        start = end


class _Scratch:
    """A boolean work array reused from block to block (fresh ones cost page faults)."""

    def __init__(self) -> None:
        self._mask = np.zeros(0, dtype=bool)

    def mask(self, size: int) -> np.ndarray:
        if len(self._mask) < size:
            self._mask = np.empty(size, dtype=bool)
        return self._mask[:size]


def _decode_block(
    block: bytearray,
    size: int,
    fast: FastPath,
    decode_line: LineDecoder,
    retry_code: str,
    scratch: _Scratch,
    threads: bool = True,
) -> pa.Table | None:
    """``block[:size]`` through the fast path, or None when it must go line by line."""
    if fast.scan is not None:
        scanned: Scanned | None = fast.scan(block, size)
    else:
        scanned = _read_block_json(block, size, fast, scratch, threads)
    if scanned is None:
        return None
    table, slow, starts, stops = scanned
    if not slow.any():
        return table
    redo = np.flatnonzero(slow)
    rows = [
        _decode_one(bytes(block[starts[i] : stops[i]]), decode_line, retry_code)
        for i in redo.tolist()
    ]
    keep = np.flatnonzero(~slow)
    merged = pa.concat_tables([table.take(pa.array(keep)), rows_to_table(rows)])
    order = np.argsort(np.concatenate([keep, redo]), kind="stable")
    return merged.take(pa.array(order))


def _read_block_json(
    block: bytearray, size: int, fast: FastPath, scratch: _Scratch, threads: bool
) -> Scanned | None:
    """``block[:size]`` through pyarrow's JSON reader and ``fast.decode``, or None."""
    data = np.frombuffer(block, dtype=np.uint8, count=size)
    buffer = pa.py_buffer(block).slice(0, size)
    found = scratch.mask(size)
    ends = np.flatnonzero(np.equal(data, 0x0A, out=found))
    if not len(ends) or ends[-1] != len(data) - 1:
        ends = np.append(ends, len(data))  # the file's last line, without a newline
    starts = np.concatenate(([0], ends[:-1] + 1))
    # Every line must start with "{" and so be non-blank: pyarrow skips blank lines (the
    # rows would no longer line up) and crashes on a bare "null".
    if not np.all(ends > starts) or not np.all(data[starts] == 0x7B):
        return None
    try:
        # Lines as strings: the cast checks UTF-8 (orjson refuses invalid text; pyarrow does
        # not look at values it skips).
        bounds = np.append(starts, len(data)).astype(np.int64)
        pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), len(starts), [None, pa.py_buffer(bounds), buffer]
        ).cast(pa.large_string())
        parsed = pa_json.read_json(
            pa.BufferReader(buffer),
            read_options=pa_json.ReadOptions(use_threads=threads, block_size=4 * 1024 * 1024),
            parse_options=pa_json.ParseOptions(
                explicit_schema=fast.schema, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowException, ValueError):
        return None
    if parsed.num_rows != len(starts):  # e.g. two objects on one line
        return None
    table, slow = fast.decode(parsed)
    slow = np.asarray(slow, dtype=bool).copy()
    for token in _NON_JSON_TOKENS:
        # Rare in result files: look for the token's first byte (memchr, 20 times quicker than
        # a substring search), then the token, and find its lines only if it is there.
        if block.find(token[:1], 0, size) >= 0 and block.find(token, 0, size) >= 0:
            first = np.flatnonzero(np.equal(data, token[0], out=found))
            slow[np.searchsorted(ends, _token_starts(data, first, token))] = True
    slow |= _too_deep(block, starts, ends)
    return Scanned(table, slow, starts, np.minimum(ends + 1, size))


def _token_starts(data: np.ndarray, candidates: np.ndarray, token: bytes) -> np.ndarray:
    """The candidate positions where ``token`` starts in ``data``."""
    found = candidates
    for offset, byte in enumerate(token):
        at = found + offset
        inside = at < len(data)
        found = found[inside]
        found = found[data[at[inside]] == byte]
    return found


def _too_deep(block: bytearray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Lines that might nest deeper than orjson allows.

    pyarrow parsed the block, so every document in it is complete: nesting ``d`` levels
    deep takes at least ``2 * d`` bracket bytes, and only long lines need counting.
    """
    deep = np.zeros(len(starts), dtype=bool)
    for i in np.flatnonzero(ends - starts > 2 * _MAX_DEPTH).tolist():
        start, end = int(starts[i]), int(ends[i])
        deep[i] = block.count(b"[", start, end) + block.count(b"{", start, end) > _MAX_DEPTH
    return deep


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
