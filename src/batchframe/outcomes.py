"""Settling results: from every attempt's decoded rows to one fate per request.

A request may appear several times: duplicated lines in an output file, a retry after a
server error, a re-download. The rule is the same everywhere: an answer from any attempt
wins; otherwise the latest attempt's error stands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .records import FAILED, OK, RESULT_SCHEMA, RETRY
from .store import read_parquet

PENDING, SUCCEEDED, ERRORED = 0, 1, 2


@dataclass(frozen=True)
class Settled:
    """One row per request key (0..n-1)."""

    table: pd.DataFrame  # RESULT_SCHEMA columns + attempt, indexed by key; missing keys absent
    status: np.ndarray  # PENDING / SUCCEEDED / ERRORED per key
    # The same rows as ``table`` as an Arrow table (key column included), for columnar work.
    arrow: pa.Table | None = field(default=None, compare=False, repr=False)

    @property
    def succeeded(self) -> int:
        return int((self.status == SUCCEEDED).sum())

    @property
    def errored(self) -> int:
        return int((self.status == ERRORED).sum())


def load_results(folder: Path) -> pa.Table:
    """Every shard's decoded results, with ``shard`` and ``attempt`` columns."""
    tables = [read_parquet(p) for p in sorted(folder.glob("*.parquet"))]
    if not tables:
        extra = [pa.field("shard", pa.int64()), pa.field("attempt", pa.int64())]
        return pa.schema(list(RESULT_SCHEMA) + extra).empty_table()
    return pa.concat_tables(tables, promote_options="default")


def settle(results: pa.Table, n_requests: int, *, in_flight: np.ndarray | None = None) -> Settled:
    """Reduce all attempts to one row per key. ``in_flight`` keys are still pending.

    Per key the winner is an answer if any attempt gave one, else the latest attempt (ties
    keep file order). The reduction runs on the Arrow table: one sort of int64 columns (or
    none, when every key appears once) and one gather, then a single conversion to pandas.
    """
    key_column = results["key"]
    all_keys = np.asarray(
        pc.fill_null(key_column, -1).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    known_rows = np.flatnonzero((all_keys >= 0) & (all_keys < n_requests))
    keys = all_keys[known_rows]
    if len(keys) and np.bincount(keys, minlength=n_requests).max() > 1:
        ok = np.asarray(
            pc.fill_null(pc.equal(results["fate"], OK), False).to_numpy(zero_copy_only=False),
            dtype=bool,
        )[known_rows]
        if "attempt" in results.column_names:
            attempt_column = results["attempt"]
            attempt = np.asarray(
                pc.fill_null(attempt_column, 0).to_numpy(zero_copy_only=False), dtype=np.int64
            )[known_rows]
            missing = np.asarray(
                attempt_column.is_null().to_numpy(zero_copy_only=False), dtype=bool
            )[known_rows]
            # Latest attempt first; a missing attempt sorts last (pandas' na_position).
            latest_first = np.where(missing, np.iinfo(np.int64).max, -attempt)
        else:
            latest_first = np.zeros(len(keys), dtype=np.int64)
        # np.lexsort is stable and sorts by the last key first: key, then answers, then latest.
        order = np.lexsort((latest_first, ~ok, keys))
        sorted_keys = keys[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = sorted_keys[1:] != sorted_keys[:-1]
        winners = known_rows[order[first]]
    else:
        # Every key at most once: order the rows by key without sorting.
        slot = np.full(n_requests, -1, dtype=np.int64)
        slot[keys] = known_rows
        winners = slot[slot >= 0]
    table = results.take(pa.array(winners, type=pa.int64()))
    frame = table.to_pandas(types_mapper=_arrow_types).set_index("key")
    status = np.full(n_requests, PENDING, dtype=np.int8)
    won_keys = all_keys[winners]

    def fate_is(value: str) -> np.ndarray:
        same = pc.fill_null(pc.equal(table["fate"], value), False)
        return np.asarray(same.to_numpy(zero_copy_only=False), dtype=bool)

    status[won_keys[fate_is(OK)]] = SUCCEEDED
    status[won_keys[fate_is(FAILED)]] = ERRORED
    # A retryable error is final only when no attempt for it is still running or planned.
    retry_keys = won_keys[fate_is(RETRY)]
    if in_flight is not None and len(in_flight):
        retry_keys = retry_keys[~np.isin(retry_keys, in_flight)]
    status[retry_keys] = ERRORED
    if in_flight is not None and len(in_flight):
        status[in_flight[status[in_flight] != SUCCEEDED]] = PENDING
    return Settled(frame, status, table)


def _arrow_types(arrow_type: pa.DataType) -> object:
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    return None
