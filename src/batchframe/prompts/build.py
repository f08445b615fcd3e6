"""From a frame to distinct requests: render, drop rows that cannot be sent, deduplicate, key.

Keys: every distinct request gets the integer key ``k`` (order of first appearance) and the
custom id ``r{k}``. Rows are mapped to keys by position, so any index (duplicates, tuples,
datetimes, arbitrary strings) round-trips untouched, and ids always match Anthropic's
``[A-Za-z0-9_-]{1,64}``.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import settings
from ..records import RequestSpec, part_name
from .distinct import DistinctRequests, RequestSink
from .render import OnMissing, Rendered, refuse_missing, render
from .template import Template

try:  # built by setup.py where a C compiler is available
    from . import _hash
except ImportError:  # pragma: no cover - exercised when the extension is not built
    _hash = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Prepared:
    """The distinct requests of a job and how rows map onto them."""

    spec: RequestSpec
    requests: DistinctRequests  # "key" + one column per message part, one row per request
    row_keys: np.ndarray  # int64, one per input row; -1 where the row has an input error
    input_errors: pa.Array  # large_string per row, null where the row is fine
    fingerprint: str
    text_bytes: int  # message text over all distinct requests (sizes the shard estimate)

    @property
    def rows(self) -> int:
        return len(self.row_keys)

    @property
    def n_requests(self) -> int:
        return len(self.requests)


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
    chunk_rows: int | None = None,
    spill_dir: Path | None = None,
) -> Prepared:
    """Render, deduplicate and key the requests of ``frame``, ``chunk_rows`` rows at a time.

    A frame of one chunk keeps its requests in memory. A larger one appends each chunk's new
    requests to a file in ``spill_dir`` (default: the store's ``staging`` folder), so memory
    holds one chunk of rendered text, not the job's.
    """
    n = len(frame)
    step = settings.chunk_rows(chunk_rows)
    templates = tuple(templates)
    if on_missing == "raise":
        refuse_missing(frame, templates, labels)  # counted over the whole frame, not a chunk
    row_keys = np.full(n, -1, dtype=np.int64)
    errors: list[pa.Array] = []
    digest = _RequestDigest(len(spec.roles))
    seen = _SeenRequests() if dedupe and n > step else None
    sink = RequestSink(
        len(spec.roles),
        spill_to=(spill_dir or settings.home() / "staging") if n > step else None,
    )
    try:
        for begin in range(0, n, step):
            chunk = frame.iloc[begin : begin + step]
            rendered = render(chunk, templates, labels=labels, on_missing=on_missing)
            errors.append(rendered.input_errors)
            new, chunk_keys = _chunk_requests(rendered, len(sink), dedupe=dedupe, seen=seen)
            row_keys[begin : begin + len(chunk)] = chunk_keys
            digest.add(new)
            sink.add(new)
        requests = sink.finish()
    except BaseException:
        sink.abandon()
        raise
    input_errors = _one_array(pa.chunked_array(errors, type=pa.large_string()))
    fingerprint = digest.fingerprint(spec, row_keys, input_errors, frame.index)
    return Prepared(spec, requests, row_keys, input_errors, fingerprint, digest.text_bytes)


def _chunk_requests(
    rendered: Rendered, next_key: int, *, dedupe: bool, seen: _SeenRequests | None
) -> tuple[pa.Table, np.ndarray]:
    """A chunk's requests not seen in earlier chunks (keyed from ``next_key``), and the key
    of each of the chunk's rows (-1 where the row has an input error)."""
    m = len(rendered.input_errors)
    sendable = np.asarray(rendered.input_errors.is_null().to_numpy(zero_copy_only=False))
    positions = np.flatnonzero(sendable)
    parts = [p.take(pa.array(positions)) if len(positions) < m else p for p in rendered.parts]
    hashes = None
    if not dedupe:
        codes = np.arange(len(positions))
    elif seen is None:
        codes = _request_codes(parts, len(positions))  # exact: compares the text itself
    else:
        # Across chunks requests are matched by their hashes; within the chunk too, so the
        # text is hashed once.
        hashes = _request_hashes(parts)
        codes = _hash_codes(*hashes)
    first = _first_occurrence(codes)
    # Every sendable row distinct (first == 0, 1, 2, ...): the parts are the requests as they
    # are, without a copy.
    take = None if len(first) == len(positions) else pa.array(first)
    distinct = [part if take is None else part.take(take) for part in parts]
    columns = {part_name(i): part for i, part in enumerate(distinct)}
    if seen is None:
        key_of_code = np.arange(next_key, next_key + len(first), dtype=np.int64)
        table = pa.table({"key": pa.array(key_of_code), **columns})
    else:
        assert hashes is not None
        h1, h2 = (h if take is None else h[first] for h in hashes)
        key_of_code, is_new = seen.assign(h1, h2, next_key=next_key)
        table = pa.table({"key": pa.array(key_of_code), **columns})
        if not is_new.all():
            table = table.take(pa.array(np.flatnonzero(is_new)))
    row_keys = np.full(m, -1, dtype=np.int64)
    row_keys[positions] = key_of_code[codes]
    return table, row_keys


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
    if len(part) > _SAMPLE_ROWS and part.null_count == 0 and _sample_mostly_distinct(part):
        hashed = _hashed_codes(part)
        if hashed is not None:
            return hashed
    encoded = pc.dictionary_encode(part)
    part_codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return part_codes, len(encoded.dictionary)


def _hashed_codes(part: pa.Array) -> tuple[np.ndarray, int] | None:
    """Codes from a hash of each value's bytes, verified; None on a hash collision."""
    values = part.cast(pa.large_binary())  # the same buffers, read as bytes
    codes, uniques = pd.factorize(_value_hash(values), sort=False)
    codes = codes.astype(np.int64)
    # Rows sharing a hash must hold the same bytes as the first row with that hash.
    shared = np.flatnonzero(np.bincount(codes, minlength=len(uniques))[codes] > 1)
    if len(shared):
        first = _first_occurrence(codes)[codes[shared]]
        same = pc.equal(values.take(pa.array(shared)), values.take(pa.array(first)))
        if not pc.all(same).as_py():
            return None
    return codes, len(uniques)


def _value_hash(values: pa.Array) -> np.ndarray:
    """A 64-bit hash of each value of a large_binary array (no nulls): the C hash where it is
    built, else Python's hash() per value."""
    if _hash is not None:
        _, offsets, data = values.buffers()
        hashed = _hash.hash_values(offsets, data or b"", values.offset, len(values))
        return np.frombuffer(hashed, dtype=np.int64)
    hashes = np.empty(len(values), dtype=np.int64)
    for start, block in _byte_blocks(values):
        hashes[start : start + len(block)] = np.fromiter(map(hash, block), np.int64, len(block))
    return hashes


def _sample_mostly_distinct(part: pa.Array) -> bool:
    """Whether more than half of the first _SAMPLE_ROWS values differ (a text per row)."""
    return bool(pc.count_distinct(part.slice(0, _SAMPLE_ROWS)).as_py() > _SAMPLE_ROWS // 2)


def _byte_blocks(values: pa.Array) -> Iterator[tuple[int, list[bytes]]]:
    """The values as Python bytes, about _HASH_BLOCK_BYTES at a time, each block with its
    start: hashing in Python needs the objects, but never all of them at once."""
    data = values.cast(pa.large_binary())  # the same buffers, read as bytes
    n = len(data)
    step = max(1, min(n, _HASH_BLOCK_BYTES * n // max(1, data.nbytes)))
    for start in range(0, n, step):
        yield start, data.slice(start, step).to_pylist()


def _first_occurrence(codes: np.ndarray) -> np.ndarray:
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.full(int(codes.max()) + 1, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes), dtype=np.int64))
    return first


# --- across chunks ------------------------------------------------------------------------------
#
# Within a chunk requests are told apart exactly (their bytes). Across chunks each distinct
# request is remembered by two 64-bit hashes of its parts, so the index costs 24 bytes a
# request instead of its text: Python's keyed SipHash (random per process) and a CRC-32 with
# the byte length. Two different requests merge only if both collide: about 2**-96 a pair.
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it permutes uint64


def _request_hashes(parts: Sequence[pa.Array]) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of each request (the tuple of its parts)."""
    n = len(parts[0]) if parts else 0
    h1 = np.zeros(n, dtype=np.uint64)
    h2 = np.zeros(n, dtype=np.uint64)
    for part in parts:
        p1, p2 = _value_hashes(part)
        h1 = h1 * _MIX + p1
        h2 = h2 * _MIX + p2
    return h1, h2


def _value_hashes(part: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The two hashes of each value (see above); a part with few values (a system prompt, a
    label) is hashed once per distinct value."""
    indices = None
    values = part
    if len(part) > _SAMPLE_ROWS and not _sample_mostly_distinct(part):
        encoded = pc.dictionary_encode(part)
        values, indices = encoded.dictionary, encoded.indices
    h1 = np.empty(len(values), dtype=np.uint64)
    h2 = np.empty(len(values), dtype=np.uint64)
    for start, block in _byte_blocks(values):
        stop = start + len(block)
        h1[start:stop] = np.fromiter(map(hash, block), np.int64, len(block)).view(np.uint64)
        h2[start:stop] = np.fromiter(map(zlib.crc32, block), np.uint64, len(block))
    lengths = pc.binary_length(values.cast(pa.large_binary())).to_numpy(zero_copy_only=False)
    h2 |= np.asarray(lengths, dtype=np.uint64) << np.uint64(32)
    if indices is not None:
        at = np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        return h1[at], h2[at]
    return h1, h2


def _hash_codes(h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """Codes numbering distinct (h1, h2) pairs in order of first appearance."""
    codes, _ = pd.factorize(h1, sort=False)
    codes = codes.astype(np.int64)
    if np.array_equal(h2, h2[_first_occurrence(codes)[codes]]):
        return codes
    # Some h1 is shared by different requests (a 64-bit collision): number the pairs.
    pairs, _ = pd.factorize(pd.MultiIndex.from_arrays([h1, h2]), sort=False)
    return np.asarray(pairs, dtype=np.int64)


class _SeenRequests:
    """Hashes of the requests of earlier chunks, sorted, with their keys."""

    def __init__(self) -> None:
        self.h1 = np.zeros(0, dtype=np.uint64)
        self.h2 = np.zeros(0, dtype=np.uint64)
        self.keys = np.zeros(0, dtype=np.int64)

    def assign(
        self, h1: np.ndarray, h2: np.ndarray, *, next_key: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The key of each of a chunk's distinct requests (an earlier one's, or a new one from
        ``next_key`` in order), and which are new. The new ones are remembered."""
        keys = np.full(len(h1), -1, dtype=np.int64)
        # Sorted queries walk the index once instead of jumping around it.
        order = np.argsort(h1)
        at = np.empty(len(h1), dtype=np.int64)
        at[order] = np.searchsorted(self.h1, h1[order])
        candidates = np.flatnonzero(at < len(self.h1))
        candidates = candidates[self.h1[at[candidates]] == h1[candidates]]
        first_hit = self.h2[at[candidates]] == h2[candidates]
        keys[candidates[first_hit]] = self.keys[at[candidates[first_hit]]]
        for i in candidates[~first_hit].tolist():
            # A 64-bit collision of h1 alone (or a run of them): walk the entries sharing it.
            j = int(at[i]) + 1
            while j < len(self.h1) and self.h1[j] == h1[i]:
                if self.h2[j] == h2[i]:
                    keys[i] = self.keys[j]
                    break
                j += 1
        is_new = keys < 0
        keys[is_new] = np.arange(next_key, next_key + int(is_new.sum()), dtype=np.int64)
        self._insert(h1[is_new], h2[is_new], keys[is_new])
        return keys, is_new

    def _insert(self, h1: np.ndarray, h2: np.ndarray, keys: np.ndarray) -> None:
        order = np.argsort(h1, kind="stable")
        h1, h2, keys = h1[order], h2[order], keys[order]
        at = np.searchsorted(self.h1, h1, side="right")
        self.h1 = np.insert(self.h1, at, h1)
        self.h2 = np.insert(self.h2, at, h2)
        self.keys = np.insert(self.keys, at, keys)


class _RequestDigest:
    """A running digest of the requests in key order, the same however they were chunked:
    one SHA-256 of each part's lengths and one of its bytes, fed as requests are added.

    The hashing runs on a thread of its own (hashlib releases the GIL on large buffers), so
    it overlaps with the rendering and deduplication of the next chunk or the JSONL encoding.
    """

    def __init__(self, n_parts: int) -> None:
        self._lengths = [hashlib.sha256() for _ in range(n_parts)]
        self._bytes = [hashlib.sha256() for _ in range(n_parts)]
        self.text_bytes = 0
        # One worker: updates run in the order they were added.
        self._hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchframe-digest")
        self._pending: list[Future[None]] = []

    def add(self, requests: pa.Table) -> None:
        for i, (lengths, data) in enumerate(zip(self._lengths, self._bytes, strict=True)):
            arr = _one_array(requests.column(part_name(i))).cast(pa.large_binary())
            sizes = np.asarray(pc.binary_length(arr).to_numpy(zero_copy_only=False), np.int64)
            self._pending.append(self._hashing.submit(lengths.update, sizes.tobytes()))
            buffer = arr.buffers()[2]
            if buffer is not None and len(arr):
                offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)
                lo, hi = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
                # The view keeps ``buffer`` alive until the update has run.
                self._pending.append(self._hashing.submit(data.update, memoryview(buffer)[lo:hi]))
                self.text_bytes += hi - lo

    def fingerprint(
        self,
        spec: RequestSpec,
        row_keys: np.ndarray,
        input_errors: pa.Array,
        index: pd.Index,
    ) -> str:
        """A digest of everything that makes a job the same job: spec, requests, rows, index."""
        for update in self._pending:
            update.result()
        self._hashing.shutdown()
        h = hashlib.sha256()
        h.update(json.dumps(spec.to_json(), sort_keys=True, default=str).encode())
        for lengths, data in zip(self._lengths, self._bytes, strict=True):
            h.update(lengths.digest())
            h.update(data.digest())
        h.update(row_keys.tobytes())
        h.update(np.asarray(input_errors.is_null().to_numpy(zero_copy_only=False)).tobytes())
        try:
            labels = pd.util.hash_pandas_object(index, index=False)
        except (TypeError, ValueError):  # mixed objects (tuples beside ints...): their reprs
            labels = pd.util.hash_pandas_object(index.map(repr), index=False)
        h.update(labels.to_numpy().tobytes())
        h.update(repr(list(index.names)).encode())
        return h.hexdigest()
