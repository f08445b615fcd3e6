"""Planning: turn prepared requests into a stored job with shard files, before any remote call.

Everything a later process needs to resume is written here: the input frame, the row -> key
map, the distinct requests, and each shard's exact upload lines. Planning is local and
deterministic; the first remote call happens in the runner.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import jsonl, settings
from .errors import RequestTooLargeError
from .prompts.build import Prepared, custom_ids
from .prompts.distinct import REQUESTS_FILE, DistinctRequests
from .providers.base import Limits, Provider
from .records import RequestSpec
from .store import JobRecord, ShardRecord, Store, atomic_writer, private_dir, write_parquet
from .store.files import write_bytes


def new_job_id() -> str:
    # Sortable by creation time, unique without coordination, safe in paths and metadata.
    return f"bf-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


# Requests encoded per step: bounds memory to one chunk of lines, whatever the job's size.
ENCODE_CHUNK = 100_000


@dataclass(frozen=True)
class ShardFile:
    """One written shard: ``shards/{number}.jsonl`` and ``shards/{number}.keys.parquet``."""

    number: int
    requests: int
    bytes: int


def write_shards(
    folder: Path,
    provider: Provider,
    spec: RequestSpec,
    requests: DistinctRequests,
    keys: np.ndarray,
    *,
    first_number: int = 0,
    max_requests: int | None = None,
    max_bytes: int | None = None,
    describe: Callable[[int], str] | None = None,
    chunk: int = ENCODE_CHUNK,
) -> list[ShardFile]:
    """Encode the requests ``keys`` and stream them into shard files within limits.

    The requests are read a batch at a time and encoded ``chunk`` at a time, each line
    appended to the open shard until the provider's (or the caller's lower) request or byte
    cap would be passed, so memory stays bounded by one batch however many rows the job has.
    A request larger than the byte cap raises RequestTooLargeError naming its row
    (``describe``); the caller discards the folder.
    """
    limits: Limits = provider.limits
    byte_cap = min(limits.max_bytes, max_bytes or limits.max_bytes)
    request_cap = min(limits.max_requests, max_requests or limits.max_requests)
    writer = _ShardWriter(folder, first_number)
    try:
        for batch, held, rows in requests.select(keys):
            for begin in range(0, len(held), chunk):
                chunk_keys = held[begin : begin + chunk]
                take = pa.array(rows[begin : begin + chunk])
                parts = [batch.column(i + 1).take(take) for i in range(len(spec.roles))]
                lines = provider.encode(spec, custom_ids(chunk_keys), parts)
                sizes = np.asarray(
                    jsonl.byte_lengths(lines).to_numpy(zero_copy_only=False), dtype=np.int64
                )
                _refuse_oversized(sizes, chunk_keys, byte_cap, limits, provider.name, describe)
                _append_lines(writer, lines, sizes, chunk_keys, byte_cap, request_cap)
        writer.close()
    finally:
        writer.abandon()
    return writer.written


def _append_lines(
    writer: _ShardWriter,
    lines: pa.Array,
    sizes: np.ndarray,
    keys: np.ndarray,
    byte_cap: int,
    request_cap: int,
) -> None:
    """Append encoded lines to the open shard, opening new ones as caps are reached."""
    cumulative = np.cumsum(sizes)
    position = 0
    while position < len(keys):
        base = int(cumulative[position - 1]) if position else 0
        room = byte_cap - writer.bytes
        fits = int(np.searchsorted(cumulative, base + room, side="right")) - position
        count = min(fits, request_cap - writer.requests, len(keys) - position)
        if count <= 0:
            writer.close()  # full: the next line opens a new shard
            continue
        writer.append(
            lines.slice(position, count),
            keys[position : position + count],
            base_bytes=int(cumulative[position + count - 1]) - base,
        )
        position += count
        if writer.requests >= request_cap:
            writer.close()


class _ShardWriter:
    """The shard being filled: an open atomic file and the keys written to it."""

    def __init__(self, folder: Path, first_number: int) -> None:
        self.folder = folder
        self.number = first_number
        self.written: list[ShardFile] = []
        self.requests = 0
        self.bytes = 0
        self._keys: list[np.ndarray] = []
        self._file: contextlib.ExitStack | None = None
        self._stream: IO[bytes] | None = None

    def append(self, lines: pa.Array, keys: np.ndarray, *, base_bytes: int) -> None:
        if self._stream is None:
            self._file = contextlib.ExitStack()
            self._stream = self._file.enter_context(
                atomic_writer(self.folder / f"{self.number}.jsonl")
            )
        jsonl.write_lines(self._stream, lines)
        self._keys.append(keys)
        self.requests += len(keys)
        self.bytes += base_bytes

    def close(self) -> None:
        if self._file is None:
            return
        self._file.close()  # fsync and rename into place
        keys = np.concatenate(self._keys)
        write_parquet(self.folder / f"{self.number}.keys.parquet", pa.table({"key": keys}))
        self.written.append(ShardFile(self.number, self.requests, self.bytes))
        self.number += 1
        self.requests = self.bytes = 0
        self._keys = []
        self._file = self._stream = None

    def abandon(self) -> None:
        """After an error: drop the half-written shard (atomic_writer removes its temp file)."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.__exit__(RuntimeError, RuntimeError("abandoned"), None)
            self._file = self._stream = None


def _refuse_oversized(
    sizes: np.ndarray,
    keys: np.ndarray,
    byte_cap: int,
    limits: Limits,
    provider: str,
    describe: Callable[[int], str] | None,
) -> None:
    too_big = np.flatnonzero(sizes > byte_cap)
    if not len(too_big):
        return
    first = int(too_big[0])
    key = int(keys[first])
    where = describe(key) if describe is not None else f"request {key}"
    limit = (
        f"{provider} accepts at most {limits.max_bytes:,} bytes per batch"
        if byte_cap == limits.max_bytes
        else f"max_shard_bytes is {byte_cap:,}"
    )
    raise RequestTooLargeError(
        f"The request for {where} is {int(sizes[first]):,} bytes and {limit}; "
        f"{len(too_big):,} request(s) in this part of the job are that large. "
        "Shorten that text (or drop those rows)."
    )


def upload_name(job_id: str, shard_no: int) -> str:
    return f"batchframe-{job_id}-shard{shard_no}.jsonl"


def planned_shard(
    job_id: str, shard: ShardFile, *, attempt: int, not_before: float | None = None
) -> ShardRecord:
    return ShardRecord(
        job_id=job_id,
        shard=shard.number,
        attempt=attempt,
        state="planned",
        requests=shard.requests,
        bytes=shard.bytes,
        upload_name=upload_name(job_id, shard.number),
        not_before=not_before,
    )


def create_job(
    store: Store,
    provider: Provider,
    frame: pd.DataFrame,
    prepared: Prepared,
    *,
    options: dict[str, Any],
    estimated_cost: float | None,
    max_shard_requests: int | None = None,
    max_shard_bytes: int | None = None,
    answered: pa.Table | None = None,
    estimate: dict[str, Any] | None = None,
) -> JobRecord:
    """Write the job's files and records; returns the stored job (state ``planned``).

    ``answered`` holds results a pilot already produced (see batchframe.pilot): they become
    the job's ``results/pilot.parquet`` and their requests are left out of the shards.
    ``estimate`` (Estimate.to_dict()) is kept as ``estimate.json`` for the cost summary.
    """
    keys = np.arange(prepared.n_requests, dtype=np.int64)
    if answered is not None and answered.num_rows:
        keys = keys[~np.isin(keys, answered["key"].to_numpy())]
    job_id = new_job_id()
    folder = store.job_dir(job_id)
    shard_dir = private_dir(folder / "shards")
    try:
        # Shards first: a request too large to send fails here, and the folder goes with it.
        written = write_shards(
            shard_dir,
            provider,
            prepared.spec,
            prepared.requests,
            keys,
            max_requests=max_shard_requests,
            max_bytes=max_shard_bytes,
            describe=_row_namer(frame, prepared.row_keys),
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise

    _write_frame(folder / "frame.parquet", frame)
    write_parquet(
        folder / "rows.parquet",
        pa.table({"key": pa.array(prepared.row_keys), "input_error": prepared.input_errors}),
    )
    prepared.requests.save(folder / REQUESTS_FILE)
    if answered is not None and answered.num_rows:
        write_parquet(private_dir(folder / "results") / "pilot.parquet", answered)
    if estimate is not None:
        write_bytes(folder / "estimate.json", json.dumps(estimate, default=str).encode())

    shards = [planned_shard(job_id, shard, attempt=1) for shard in written]
    now = time.time()
    record = JobRecord(
        id=job_id,
        fingerprint=prepared.fingerprint,
        created_at=now,
        updated_at=now,
        provider=prepared.spec.provider,
        model=prepared.spec.model,
        state="planned" if shards else "running",
        spec=prepared.spec.to_json(),
        options={
            **options,
            "max_shard_requests": max_shard_requests,
            "max_shard_bytes": max_shard_bytes,
        },
        rows=prepared.rows,
        requests=prepared.n_requests,
        estimated_cost=estimated_cost,
    )
    store.insert_job(record)
    store.insert_shards(shards)
    store.log(
        job_id,
        "planned",
        f"{prepared.rows} rows, {prepared.n_requests} requests, {len(shards)} shards",
    )
    return record


# The exact index, kept beside frame.parquet when Parquet can only hold its text.
INDEX_PICKLE = "index.pickle"

# What pyarrow raises for values it cannot store.
_ARROW_REFUSALS = (
    pa.ArrowInvalid,
    pa.ArrowTypeError,
    pa.ArrowNotImplementedError,
    ValueError,
    TypeError,
)


# Rows converted to Arrow at once when the frame is kept: one slice's copy, not the frame's.
FRAME_SLICE_ROWS = 262_144


def _write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Keep the input frame so attach() can rebuild results in another process.

    Written a slice of rows at a time. Columns pyarrow cannot store (arbitrary Python objects)
    are kept as their text; such a frame, or one whose slices disagree on a column's type,
    is converted whole.
    """
    if _write_frame_in_slices(path, frame):
        return
    try:
        table = pa.Table.from_pandas(frame, preserve_index=True)
    except _ARROW_REFUSALS:
        safe = frame.copy()
        for column in safe.columns:
            try:
                pa.array(safe[column], from_pandas=True)
            except _ARROW_REFUSALS:
                safe[column] = safe[column].astype(str)
        try:
            table = pa.Table.from_pandas(safe, preserve_index=True)
        except _ARROW_REFUSALS:
            # An index of tuples or mixed objects: Parquet keeps its text, and a pickle of
            # the index itself (in the owner-only job folder, written and read only by us)
            # lets attach() give back the very same labels.
            write_bytes(path.with_name(INDEX_PICKLE), pickle.dumps(frame.index, protocol=5))
            safe.index = safe.index.map(str)
            table = pa.Table.from_pandas(safe, preserve_index=True)
    write_parquet(path, table)


def _write_frame_in_slices(path: Path, frame: pd.DataFrame) -> bool:
    """Write ``frame`` slice by slice with one schema; False (nothing written) if a slice
    cannot be converted or disagrees with the first one's types."""
    try:
        with atomic_writer(path) as stream:
            writer: pq.ParquetWriter | None = None
            schema: pa.Schema | None = None
            try:
                step = min(FRAME_SLICE_ROWS, settings.chunk_rows())
                for begin in range(0, max(len(frame), 1), step):
                    piece = frame.iloc[begin : begin + step]
                    table = pa.Table.from_pandas(piece, preserve_index=True, schema=schema)
                    if writer is None:
                        schema = table.schema
                        writer = pq.ParquetWriter(stream, schema, compression="zstd")
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()
    except _ARROW_REFUSALS:
        return False
    return True


def _row_namer(frame: pd.DataFrame, row_keys: np.ndarray) -> Callable[[int], str]:
    """Name the first row that sent request ``key``: its index label and position."""

    def describe(key: int) -> str:
        position = int(np.flatnonzero(np.asarray(row_keys) == key)[0])
        return f"row {frame.index[position]!r} (position {position})"

    return describe
