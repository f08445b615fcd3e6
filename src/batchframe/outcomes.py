"""Settling results: from every attempt's decoded rows to one fate per request.

A request may appear several times: duplicated lines in an output file, a retry after a
server error, a re-download. The rule is the same everywhere: an answer from any attempt
wins; otherwise the latest attempt's error stands.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    """Reduce all attempts to one row per key. ``in_flight`` keys are still pending."""
    known = results.filter(
        pc.and_(pc.greater_equal(results["key"], 0), pc.less(results["key"], n_requests))
    )
    frame = known.to_pandas(types_mapper=_arrow_types)
    if len(frame):
        frame["_ok"] = (frame["fate"] == OK).astype("int8")
        frame = frame.sort_values(
            ["key", "_ok", "attempt"], ascending=[True, False, False], kind="stable"
        )
        frame = frame.drop_duplicates("key", keep="first").drop(columns="_ok").set_index("key")
    else:
        frame = frame.set_index("key")
    status = np.full(n_requests, PENDING, dtype=np.int8)
    keys = frame.index.to_numpy(dtype=np.int64)
    fate = frame["fate"].to_numpy(dtype=object) if len(frame) else np.array([], dtype=object)
    status[keys[fate == OK]] = SUCCEEDED
    status[keys[fate == FAILED]] = ERRORED
    # A retryable error is final only when no attempt for it is still running or planned.
    retry_keys = keys[fate == RETRY]
    if in_flight is not None and len(in_flight):
        retry_keys = retry_keys[~np.isin(retry_keys, in_flight)]
    status[retry_keys] = ERRORED
    if in_flight is not None and len(in_flight):
        status[in_flight[status[in_flight] != SUCCEEDED]] = PENDING
    return Settled(frame, status)


def _arrow_types(arrow_type: pa.DataType) -> object:
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    return None
