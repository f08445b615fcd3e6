"""From a frame to distinct requests: render, drop rows that cannot be sent, deduplicate, key.

Keys: every distinct request gets the integer key ``k`` (order of first appearance) and the
custom id ``r{k}``. Rows are mapped to keys by position, so any index (duplicates, tuples,
datetimes, arbitrary strings) round-trips untouched, and ids always match Anthropic's
``[A-Za-z0-9_-]{1,64}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..records import RequestSpec, part_name
from .render import OnMissing, render
from .template import Template


@dataclass(frozen=True)
class Prepared:
    """The distinct requests of a job and how rows map onto them."""

    spec: RequestSpec
    requests: pa.Table  # "key" + one column per message part, one row per distinct request
    row_keys: np.ndarray  # int64, one per input row; -1 where the row has an input error
    input_errors: pa.Array  # large_string per row, null where the row is fine
    fingerprint: str

    @property
    def rows(self) -> int:
        return len(self.row_keys)

    @property
    def n_requests(self) -> int:
        return self.requests.num_rows

    def parts(self) -> list[pa.Array]:
        return [_one_array(self.requests.column(part_name(i))) for i in range(len(self.spec.roles))]


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    """The column as one Array; a single chunk is returned as is (combine_chunks copies it)."""
    if column.num_chunks == 1:
        return column.chunk(0)
    return column.combine_chunks()


def custom_ids(keys: pa.Array | np.ndarray) -> pa.Array:
    """The custom id of each key: ``r`` + the key in decimal."""
    text = pc.cast(pa.array(keys, type=pa.int64()), pa.large_string())
    prefix = pa.scalar("r", pa.large_string())
    return pc.binary_join_element_wise(prefix, text, pa.scalar("", pa.large_string()))


_INT64_MAX = str(np.iinfo(np.int64).max)


def keys_from_custom_ids(ids: pa.Array) -> np.ndarray:
    """Inverse of :func:`custom_ids`; ids that are not ours (or not canonical) map to -1."""
    arr = ids.cast(pa.large_string())
    # Exactly what custom_ids writes: "r" + a non-negative int64 without leading zeros.
    ok = pc.fill_null(pc.match_substring_regex(arr, r"^r(0|[1-9][0-9]{0,18})$"), False)
    digits = pc.utf8_slice_codeunits(pc.if_else(ok, arr, "r-1"), 1)
    # 19 digits may exceed int64; equal-length digit strings compare like the numbers.
    too_big = pc.and_(
        pc.equal(pc.utf8_length(digits), len(_INT64_MAX)),
        pc.greater(digits, pa.scalar(_INT64_MAX, pa.large_string())),
    )
    digits = pc.if_else(too_big, "-1", digits)
    return np.asarray(pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False))


def prepare(
    frame: pd.DataFrame,
    spec: RequestSpec,
    templates: Sequence[Template],
    *,
    labels: Mapping[str, object],
    on_missing: OnMissing,
    dedupe: bool = True,
) -> Prepared:
    rendered = render(frame, tuple(templates), labels=labels, on_missing=on_missing)
    n = len(frame)
    sendable = np.asarray(rendered.input_errors.is_null().to_numpy(zero_copy_only=False))
    positions = np.flatnonzero(sendable)
    parts = [p.take(pa.array(positions)) if len(positions) < n else p for p in rendered.parts]

    codes = _request_codes(parts, len(positions)) if dedupe else np.arange(len(positions))
    first = _first_occurrence(codes)
    row_keys = np.full(n, -1, dtype=np.int64)
    row_keys[positions] = codes
    columns: dict[str, pa.Array] = {"key": pa.array(np.arange(len(first), dtype=np.int64))}
    # Every sendable row distinct (first == 0, 1, 2, ...): the parts are the requests as
    # they are, without a copy.
    take = None if len(first) == len(positions) else pa.array(first)
    for i, part in enumerate(parts):
        columns[part_name(i)] = part if take is None else part.take(take)
    requests = pa.table(columns)
    fingerprint = _fingerprint(spec, requests, row_keys, rendered.input_errors, frame.index)
    return Prepared(spec, requests, row_keys, rendered.input_errors, fingerprint)


def _request_codes(parts: list[pa.Array], n: int) -> np.ndarray:
    """Codes numbering distinct (part0, part1, ...) tuples in order of first appearance."""
    codes = np.zeros(n, dtype=np.int64)
    for part in parts:
        part_codes, size = _part_codes(part)
        if size <= 1:
            continue
        # Combine pairwise and renumber so the product never overflows int64.
        combined = codes * size + part_codes
        codes, _ = pd.factorize(combined, sort=False)
        codes = codes.astype(np.int64)
    return codes


# Parts that are mostly distinct (a description per row) are numbered by hashing their
# bytes: dictionary encoding would copy every distinct string twice (memo table and dictionary),
# doubling the memory of the biggest column. Parts with few values (a system prompt) are
# dictionary encoded: their memo table is small.
_SAMPLE_ROWS = 10_000
_HASH_BLOCK_BYTES = 32 * 1024 * 1024


def _part_codes(part: pa.Array) -> tuple[np.ndarray, int]:
    """Codes numbering the distinct values of ``part`` (a bijection), and how many there are."""
    if len(part) > _SAMPLE_ROWS and part.null_count == 0:
        distinct = pc.count_distinct(part.slice(0, _SAMPLE_ROWS)).as_py()
        if distinct > _SAMPLE_ROWS // 2:
            hashed = _hashed_codes(part)
            if hashed is not None:
                return hashed
    encoded = pc.dictionary_encode(part)
    part_codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return part_codes, len(encoded.dictionary)


def _hashed_codes(part: pa.Array) -> tuple[np.ndarray, int] | None:
    """Codes from a hash of each value's bytes, verified; None on a hash collision."""
    n = len(part)
    values = part.cast(pa.large_binary())  # the same buffers, read as bytes
    step = max(1, min(n, _HASH_BLOCK_BYTES * n // max(1, values.nbytes)))
    hashes = np.empty(n, dtype=np.int64)
    for start in range(0, n, step):
        block = values.slice(start, step).to_pylist()
        hashes[start : start + len(block)] = np.fromiter(
            map(hash, block), dtype=np.int64, count=len(block)
        )
    codes, uniques = pd.factorize(hashes, sort=False)
    codes = codes.astype(np.int64)
    # Rows sharing a hash must hold the same bytes as the first row with that hash.
    shared = np.flatnonzero(np.bincount(codes, minlength=len(uniques))[codes] > 1)
    if len(shared):
        first = _first_occurrence(codes)[codes[shared]]
        same = pc.equal(values.take(pa.array(shared)), values.take(pa.array(first)))
        if not pc.all(same).as_py():
            return None
    return codes, len(uniques)


def _first_occurrence(codes: np.ndarray) -> np.ndarray:
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.full(int(codes.max()) + 1, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes), dtype=np.int64))
    return first


def _fingerprint(
    spec: RequestSpec,
    requests: pa.Table,
    row_keys: np.ndarray,
    input_errors: pa.Array,
    index: pd.Index,
) -> str:
    """A digest of everything that makes a job the same job: spec, requests, rows, index."""
    h = hashlib.sha256()
    h.update(json.dumps(spec.to_json(), sort_keys=True, default=str).encode())
    for name in requests.column_names[1:]:
        arr = _one_array(requests.column(name))
        h.update(np.asarray(pc.binary_length(arr).to_numpy(zero_copy_only=False)).tobytes())
        for chunk in [arr.cast(pa.large_binary())]:
            data = chunk.buffers()[2]
            if data is not None:
                offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)
                lo, hi = int(offsets[chunk.offset]), int(offsets[chunk.offset + len(chunk)])
                h.update(memoryview(data)[lo:hi])
    h.update(row_keys.tobytes())
    h.update(np.asarray(input_errors.is_null().to_numpy(zero_copy_only=False)).tobytes())
    try:
        labels = pd.util.hash_pandas_object(index, index=False)
    except (TypeError, ValueError):  # mixed objects (tuples beside ints...): hash their reprs
        labels = pd.util.hash_pandas_object(index.map(repr), index=False)
    h.update(labels.to_numpy().tobytes())
    h.update(repr(list(index.names)).encode())
    return h.hexdigest()
