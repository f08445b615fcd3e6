"""Settling results: from every attempt's decoded rows to one fate per request.

A request may appear several times: duplicated lines in an output file, a retry after a
server error, a re-download. The rule is the same everywhere: an answer from any attempt
wins; otherwise the latest attempt's error stands.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .records import FAILED, OK, RESULT_SCHEMA, RETRY
from .store import read_parquet, write_parquet

PENDING, SUCCEEDED, ERRORED = 0, 1, 2


class Settled:
    """One row per request key (0..n-1).

    ``status`` is PENDING / SUCCEEDED / ERRORED per key. ``arrow`` holds the winning rows
    (RESULT_SCHEMA columns + attempt, key column included) in key order, ``table`` the same as
    pandas indexed by key; keys without a result are absent from both. ``by_key`` gives one
    column for every key. Built from ``table`` or ``arrow``, or by :func:`settle` from all
    results and the winning row per key, in which case the columns are gathered only when
    asked for: the join needs a few of them once, and pandas strings cost a second at 1e6.
    """

    def __init__(
        self,
        table: pd.DataFrame | None,
        status: np.ndarray,
        arrow: pa.Table | None = None,
        *,
        source: pa.Table | None = None,
        rows: np.ndarray | None = None,
    ) -> None:
        self.status = status
        self._table = table
        self._arrow = arrow
        if source is None or rows is None:
            if arrow is None:
                if table is None:
                    raise ValueError("Settled needs a table, an Arrow table or source rows")
                arrow = self._arrow = pa.Table.from_pandas(
                    table.reset_index(), preserve_index=False
                )
            source, rows = arrow, _rows_of_keys(arrow, len(status))
        self._source: pa.Table = source
        # The row of ``source`` that holds each key, -1 where none does.
        self._rows: np.ndarray = rows

    @property
    def arrow(self) -> pa.Table:
        if self._arrow is None:
            winners = pa.array(self._rows[self._rows >= 0])
            self._arrow = self._source.combine_chunks().take(winners)
        return self._arrow

    @property
    def table(self) -> pd.DataFrame:
        if self._table is None:
            self._table = self.arrow.to_pandas(types_mapper=_arrow_types).set_index("key")
        return self._table

    def by_key(self, name: str) -> pa.Array | None:
        """Column ``name`` for keys 0..n-1, null where a key has no result (None: no column)."""
        if name not in self._source.column_names:
            return None
        values = self._source[name]
        if values.null_count == len(values):  # e.g. no refusals: nothing to gather
            return pa.nulls(len(self._rows), values.type)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()  # a gather across many chunks is much slower
        if self._gather is None:
            return values
        gathered: pa.Array = values.take(self._gather)
        return gathered

    @cached_property
    def _gather(self) -> pa.Array | None:
        """The gather that puts ``source`` in key order; None when row k holds key k already."""
        rows = self._rows
        if self._source.num_rows == len(rows) and np.array_equal(rows, np.arange(len(rows))):
            return None
        return pa.array(rows, mask=rows < 0)

    @property
    def succeeded(self) -> int:
        return int((self.status == SUCCEEDED).sum())

    @property
    def errored(self) -> int:
        return int((self.status == ERRORED).sum())


def _rows_of_keys(table: pa.Table, n_requests: int) -> np.ndarray:
    """For each key 0..n-1, the row of ``table`` that holds it (the last one), or -1."""
    keys = np.asarray(pc.fill_null(table["key"], -1).to_numpy(zero_copy_only=False), np.int64)
    rows = np.full(n_requests, -1, dtype=np.int64)
    inside = (keys >= 0) & (keys < n_requests)
    rows[keys[inside]] = np.flatnonzero(inside)
    return rows


class _ResultFiles:
    """Result tables this process wrote or read, kept while their files stay unchanged.

    The runner settles all results after every shard it collects and the join settles them
    once more; without this each of those reads every shard's file again. Only the latest
    jobs' folders are kept, within a memory budget, so a long-lived kernel does not
    accumulate them.
    """

    def __init__(self, folders: int = 2, budget: int = 1 << 30) -> None:
        self._folders = folders
        self._budget = budget
        self._tables: OrderedDict[Path, dict[Path, tuple[tuple[int, ...], pa.Table]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    @staticmethod
    def _version(path: Path) -> tuple[int, ...]:
        stat = path.stat()
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def _held_bytes(self) -> int:
        return sum(t.nbytes for files in self._tables.values() for _, t in files.values())

    def put(self, path: Path, table: pa.Table, version: tuple[int, ...] | None = None) -> None:
        """Keep ``table`` as the content of ``path`` (as the file is now, or at ``version``)."""
        if version is None:
            version = self._version(path)
        with self._lock:
            files = self._tables.setdefault(path.parent, {})
            files[path] = (version, table)
            self._tables.move_to_end(path.parent)
            while len(self._tables) > self._folders:
                self._tables.popitem(last=False)
            # Oldest folders go first; a job over budget on its own is not kept at all.
            while self._tables and self._held_bytes() > self._budget:
                self._tables.popitem(last=False)

    def read(self, path: Path) -> pa.Table:
        # The version is taken before reading: a file replaced meanwhile is read again next time.
        version = self._version(path)
        with self._lock:
            held = self._tables.get(path.parent, {}).get(path)
        if held is not None and held[0] == version:
            return held[1]
        table = read_parquet(path)
        self.put(path, table, version)
        return table


_result_files = _ResultFiles()


def write_results(path: Path, results: pa.Table) -> None:
    """Store one shard's decoded results; lz4, since the join reads them back whole."""
    write_parquet(path, results, compression="lz4")
    _result_files.put(path, results)


def load_results(folder: Path) -> pa.Table:
    """Every shard's decoded results, with ``shard`` and ``attempt`` columns."""
    tables = [_result_files.read(p) for p in sorted(folder.glob("*.parquet"))]
    if not tables:
        extra = [pa.field("shard", pa.int64()), pa.field("attempt", pa.int64())]
        return pa.schema(list(RESULT_SCHEMA) + extra).empty_table()
    return pa.concat_tables(tables, promote_options="default")


def settle(results: pa.Table, n_requests: int, *, in_flight: np.ndarray | None = None) -> Settled:
    """Reduce all attempts to one row per key. ``in_flight`` keys are still pending.

    Per key the winner is an answer if any attempt gave one, else the latest attempt (ties
    keep file order). The reduction runs on the Arrow table's key column; only repeated keys
    are sorted, and columns are gathered when the caller asks.
    """
    key_column = results["key"]
    all_keys = np.asarray(
        pc.fill_null(key_column, -1).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    known_rows = np.flatnonzero((all_keys >= 0) & (all_keys < n_requests))
    keys = all_keys[known_rows]
    # Keys seen once are placed without sorting; only the rows of repeated keys (duplicated
    # lines, retries: usually a few) are sorted to pick their winners.
    counts = np.bincount(keys, minlength=n_requests)
    slot = np.full(n_requests, -1, dtype=np.int64)
    repeated = counts[keys] > 1
    slot[keys[~repeated]] = known_rows[~repeated]
    if repeated.any():
        rows, keys = known_rows[repeated], keys[repeated]
        ok = _column_mask(pc.equal(results["fate"], OK), rows)
        if "attempt" in results.column_names:
            attempt_column = results["attempt"]
            attempt = np.asarray(
                pc.fill_null(attempt_column, 0).to_numpy(zero_copy_only=False), dtype=np.int64
            )[rows]
            missing = _column_mask(attempt_column.is_null(), rows)
            # Latest attempt first; a missing attempt sorts last (pandas' na_position).
            latest_first = np.where(missing, np.iinfo(np.int64).max, -attempt)
        else:
            latest_first = np.zeros(len(keys), dtype=np.int64)
        # np.lexsort is stable and sorts by the last key first: key, then answers, then latest.
        order = np.lexsort((latest_first, ~ok, keys))
        sorted_keys = keys[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = sorted_keys[1:] != sorted_keys[:-1]
        slot[sorted_keys[first]] = rows[order[first]]
    won_keys = np.flatnonzero(slot >= 0)
    winners = slot[won_keys]
    status = np.full(n_requests, PENDING, dtype=np.int8)

    def fate_is(value: str) -> np.ndarray:
        return _column_mask(pc.equal(results["fate"], value), winners)

    status[won_keys[fate_is(OK)]] = SUCCEEDED
    status[won_keys[fate_is(FAILED)]] = ERRORED
    # A retryable error is final only when no attempt for it is still running or planned.
    retry_keys = won_keys[fate_is(RETRY)]
    if in_flight is not None and len(in_flight):
        retry_keys = retry_keys[~np.isin(retry_keys, in_flight)]
    status[retry_keys] = ERRORED
    if in_flight is not None and len(in_flight):
        status[in_flight[status[in_flight] != SUCCEEDED]] = PENDING
    return Settled(None, status, source=results, rows=slot)


def _column_mask(values: pa.Array | pa.ChunkedArray, rows: np.ndarray) -> np.ndarray:
    """A boolean column (null as False) at ``rows``."""
    mask = pc.fill_null(values, False).to_numpy(zero_copy_only=False)
    return np.asarray(mask, dtype=bool)[rows]


def _arrow_types(arrow_type: pa.DataType) -> object:
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    return None
