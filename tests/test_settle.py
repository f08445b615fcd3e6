"""Settling attempts to one row per key, and the join's per-key columns built from it.

``settle`` keeps every result row and gathers a column only when asked (``by_key``,
``arrow``, ``table``); these tests check that what it gives equals a plain per-key reading
of the same rows, on chunked, shuffled input with duplicates, retries and stray keys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from batchframe import outcomes
from batchframe.join import Columns, key_level
from batchframe.memory import steady_pool
from batchframe.outcomes import (
    ERRORED,
    PENDING,
    SUCCEEDED,
    Settled,
    load_results,
    settle,
    write_results,
)
from batchframe.records import RESULT_SCHEMA
from batchframe.store import write_parquet

N = 40


def _results(seed: int) -> pa.Table:
    """Rows for keys -1..N+2 in random order: answers, errors, repeats over attempts."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(3 * N):
        key = int(rng.integers(-1, N + 3))
        fate = str(rng.choice(["ok", "failed", "retry"]))
        ok = fate == "ok"
        rows.append(
            {
                "key": key,
                "fate": fate,
                "text": f"answer {i}" if ok else None,
                "error_code": None if ok else f"code{i}",
                "error_message": None if ok else f"message {i}",
                "finish_reason": str(rng.choice(["stop", "length"])) if ok else None,
                "refusal": None,
                "input_tokens": i if ok else None,
                "output_tokens": 2 * i if ok else None,
                "cached_tokens": None,
                "cache_write_tokens": None,
                "reasoning_tokens": 0 if ok else None,
                "shard": 0,
                "attempt": None if i % 17 == 0 else int(rng.integers(1, 4)),
            }
        )
    schema = pa.schema([*RESULT_SCHEMA, ("shard", pa.int64()), ("attempt", pa.int64())])
    table = pa.Table.from_pylist(rows, schema=schema)
    return pa.concat_tables([table.slice(0, 50), table.slice(50, 7), table.slice(57)])


def _winners(results: pa.Table, n: int) -> dict[int, dict[str, object]]:
    """The rule, row by row: an answer wins, else the latest attempt; ties keep file order."""
    best: dict[int, tuple[tuple[int, float, int], dict[str, object]]] = {}
    for position, row in enumerate(results.to_pylist()):
        key = row["key"]
        if not 0 <= key < n:
            continue
        attempt = row["attempt"]
        rank = (row["fate"] != "ok", float("inf") if attempt is None else -attempt, position)
        if key not in best or rank < best[key][0]:
            best[key] = (rank, row)
    return {key: row for key, (_, row) in best.items()}


def test_settle_matches_the_rule_and_gathers_by_key() -> None:
    for seed in range(5):
        results = _results(seed)
        settled = settle(results, N)
        expected = _winners(results, N)
        assert sorted(expected) == settled.arrow["key"].to_pylist()
        assert settled.arrow.to_pylist() == [expected[k] for k in sorted(expected)]
        for name in results.column_names:
            column = settled.by_key(name)
            assert column is not None and len(column) == N
            want = [expected[k][name] if k in expected else None for k in range(N)]
            assert column.to_pylist() == want, name
        assert settled.by_key("no such column") is None
        table = settled.table
        assert table.index.tolist() == sorted(expected)
        assert str(table["text"].dtype) == "string" and str(table["input_tokens"].dtype) == "Int64"
        status = np.full(N, PENDING, dtype=np.int8)
        for key, row in expected.items():
            status[key] = SUCCEEDED if row["fate"] == "ok" else ERRORED
        assert settled.status.tolist() == status.tolist()


def test_key_level_is_the_same_from_settle_or_from_a_table() -> None:
    results = _results(7)
    lazy = settle(results, N)
    eager = Settled(lazy.table.copy(), lazy.status)  # built by hand, as callers may
    columns = Columns("out")
    a = key_level(lazy, N, response_format=None, columns=columns, unfinished="not yet")
    b = key_level(eager, N, response_format=None, columns=columns, unfinished="not yet")
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_series_equal(a[1], b[1])
    pd.testing.assert_series_equal(a[2], b[2])


def test_rows_already_in_key_order_are_used_as_they_are() -> None:
    keys = np.arange(N)
    results = pa.table(
        {
            "key": keys,
            "fate": ["ok"] * N,
            "text": [f"t{k}" for k in keys],
            "refusal": pa.nulls(N, pa.large_string()),
        }
    )
    settled = settle(results, N)
    assert settled.by_key("text") == results["text"].combine_chunks()
    assert settled.by_key("refusal") == pa.nulls(N, pa.large_string())
    assert settled.succeeded == N


def test_results_read_back_are_the_files_current_content(tmp_path: Path) -> None:
    """Tables kept in memory stand in for their files only while the files are unchanged."""
    folder = tmp_path / "results"
    folder.mkdir()
    first, second = _results(1), _results(2)
    write_results(folder / "0.parquet", first)
    assert load_results(folder).to_pylist() == first.to_pylist()
    # Replaced by someone else (another process resuming the job): the new content counts.
    write_parquet(folder / "0.parquet", second)
    assert load_results(folder).to_pylist() == second.to_pylist()
    write_results(folder / "1.parquet", first)
    both = load_results(folder)
    assert both.to_pylist() == second.to_pylist() + first.to_pylist()
    (folder / "1.parquet").unlink()
    assert load_results(folder).num_rows == second.num_rows


def test_the_result_pool_is_restored_and_its_arrays_outlive_it() -> None:
    before = pa.default_memory_pool().backend_name
    with steady_pool():
        inside = pa.default_memory_pool().backend_name
        with steady_pool():  # re-entrant
            assert pa.default_memory_pool().backend_name == inside
        assert pa.default_memory_pool().backend_name == inside
        made = pa.array([f"row {i}" for i in range(1000)])
    assert inside in {"jemalloc", "system"}
    assert pa.default_memory_pool().backend_name == before
    assert made[999].as_py() == "row 999"


def test_results_kept_in_memory_stay_within_their_budget(tmp_path: Path) -> None:
    table = _results(3)
    files = outcomes._ResultFiles(folders=2, budget=int(2.5 * table.nbytes))
    for job in ("a", "b", "c"):
        (tmp_path / job).mkdir()
        for shard in range(2):
            path = tmp_path / job / f"{shard}.parquet"
            write_parquet(path, table)
            files.put(path, table)
    held = files._tables
    assert list(held) == [tmp_path / "c"]  # two jobs would be over budget; the oldest went
    small = outcomes._ResultFiles(folders=2, budget=table.nbytes // 2)
    small.put(tmp_path / "a" / "0.parquet", table)
    assert not small._tables  # a job larger than the budget is not kept at all
    assert small.read(tmp_path / "a" / "0.parquet").to_pylist() == table.to_pylist()
