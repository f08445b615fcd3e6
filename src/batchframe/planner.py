"""Planning: turn prepared requests into a stored job with shard files, before any remote call.

Everything a later process needs to resume is written here: the input frame, the row -> key
map, the distinct requests, and each shard's exact upload lines. Planning is local and
deterministic; the first remote call happens in the runner.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from . import jsonl
from .errors import RequestTooLargeError
from .prompts.build import Prepared, custom_ids
from .prompts.shards import plan_shards
from .providers.base import Limits, Provider
from .records import RequestSpec, part_name
from .store import JobRecord, ShardRecord, Store, atomic_writer, private_dir, write_parquet
from .store.files import write_bytes


@dataclass(frozen=True)
class ShardPlan:
    keys: np.ndarray
    lines: pa.Array

    @property
    def bytes(self) -> int:
        return int(np.asarray(jsonl.byte_lengths(self.lines)).sum()) if len(self.lines) else 0


def new_job_id() -> str:
    # Sortable by creation time, unique without coordination, safe in paths and metadata.
    return f"bf-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def encode_shards(
    provider: Provider,
    spec: RequestSpec,
    requests: pa.Table,
    keys: np.ndarray,
    *,
    max_requests: int | None = None,
    max_bytes: int | None = None,
    describe: Callable[[int], str] | None = None,
) -> list[ShardPlan]:
    """Encode the requests with ``keys`` and split them within the provider's limits.

    ``max_requests`` / ``max_bytes`` lower the provider's caps; ``describe`` names the row
    behind a request key in the error for a request too large to send.
    """
    if len(keys) == 0:
        return []
    limits: Limits = provider.limits
    take = pa.array(keys)
    parts = [
        requests.column(part_name(i)).combine_chunks().take(take) for i in range(len(spec.roles))
    ]
    lines = provider.encode(spec, custom_ids(keys), parts)
    sizes = np.asarray(jsonl.byte_lengths(lines).to_numpy(zero_copy_only=False), dtype=np.int64)
    byte_cap = min(limits.max_bytes, max_bytes or limits.max_bytes)
    too_big = np.flatnonzero(sizes > byte_cap)
    if len(too_big):
        first = int(too_big[0])
        key = int(keys[first])
        where = describe(key) if describe is not None else f"request {key}"
        limit = (
            f"{provider.name} accepts at most {limits.max_bytes:,} bytes per batch"
            if byte_cap == limits.max_bytes
            else f"max_shard_bytes is {byte_cap:,}"
        )
        raise RequestTooLargeError(
            f"The request for {where} is {int(sizes[first]):,} bytes and {limit}; "
            f"{len(too_big):,} request(s) are that large. Shorten that text (or drop those rows)."
        )
    cap = min(limits.max_requests, max_requests or limits.max_requests)
    return [
        ShardPlan(keys=keys[s], lines=lines.slice(s.start, s.stop - s.start))
        for s in plan_shards(sizes, max_requests=cap, max_bytes=byte_cap)
    ]


def write_shard_files(folder: Path, shard_no: int, plan: ShardPlan) -> None:
    with atomic_writer(folder / f"{shard_no}.jsonl") as stream:
        jsonl.write_lines(stream, plan.lines)
    write_parquet(folder / f"{shard_no}.keys.parquet", pa.table({"key": pa.array(plan.keys)}))


def upload_name(job_id: str, shard_no: int) -> str:
    return f"batchframe-{job_id}-shard{shard_no}.jsonl"


def planned_shard(
    job_id: str, number: int, plan: ShardPlan, *, attempt: int, not_before: float | None = None
) -> ShardRecord:
    return ShardRecord(
        job_id=job_id,
        shard=number,
        attempt=attempt,
        state="planned",
        requests=len(plan.keys),
        bytes=plan.bytes,
        upload_name=upload_name(job_id, number),
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
    # Encode first: a request too large to send fails here, before any file is written.
    plans = encode_shards(
        provider,
        prepared.spec,
        prepared.requests,
        keys,
        max_requests=max_shard_requests,
        max_bytes=max_shard_bytes,
        describe=_row_namer(frame, prepared.row_keys),
    )
    job_id = new_job_id()
    folder = store.job_dir(job_id)
    shard_dir = folder / "shards"
    private_dir(shard_dir)

    _write_frame(folder / "frame.parquet", frame)
    write_parquet(
        folder / "rows.parquet",
        pa.table({"key": pa.array(prepared.row_keys), "input_error": prepared.input_errors}),
    )
    write_parquet(folder / "requests.parquet", prepared.requests)
    if answered is not None and answered.num_rows:
        write_parquet(private_dir(folder / "results") / "pilot.parquet", answered)
    if estimate is not None:
        write_bytes(folder / "estimate.json", json.dumps(estimate, default=str).encode())

    shards = []
    for shard_no, plan in enumerate(plans):
        write_shard_files(shard_dir, shard_no, plan)
        shards.append(planned_shard(job_id, shard_no, plan, attempt=1))
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


def _write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Keep the input frame so attach() can rebuild results in another process.

    Columns pyarrow cannot store (arbitrary Python objects) are kept as their text.
    """
    try:
        table = pa.Table.from_pandas(frame, preserve_index=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError, TypeError):
        safe = frame.copy()
        for column in safe.columns:
            try:
                pa.array(safe[column], from_pandas=True)
            except (
                pa.ArrowInvalid,
                pa.ArrowTypeError,
                pa.ArrowNotImplementedError,
                ValueError,
                TypeError,
            ):
                safe[column] = safe[column].astype(str)
        try:
            table = pa.Table.from_pandas(safe, preserve_index=True)
        except (
            pa.ArrowInvalid,
            pa.ArrowTypeError,
            pa.ArrowNotImplementedError,
            ValueError,
            TypeError,
        ):
            # An index of tuples or mixed objects: keep its text so attach() still lines up.
            safe.index = safe.index.map(str)
            table = pa.Table.from_pandas(safe, preserve_index=True)
    write_parquet(path, table)


def _row_namer(frame: pd.DataFrame, row_keys: np.ndarray) -> Callable[[int], str]:
    """Name the first row that sent request ``key``: its index label and position."""

    def describe(key: int) -> str:
        position = int(np.flatnonzero(np.asarray(row_keys) == key)[0])
        return f"row {frame.index[position]!r} (position {position})"

    return describe
