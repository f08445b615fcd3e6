"""Faults on the OpenAI path: HTTP errors, broken files, failed batches, row error shares.

Each test injects one fault through the emulator's FaultPlan and checks the two invariants:
every row ends with an answer or an error, and nothing is paid twice.
"""

from __future__ import annotations

import pandas as pd
import pytest

import batchframe
from batchframe.emulator import Emulator, FaultPlan


def frame(n: int = 20) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"item {i}" for i in range(n)]}, index=range(100, 100 + n))


def run(df: pd.DataFrame, client, **kwargs) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    out = df.llm.batch("Echo {text}", model="gpt-4o-mini", client=client, **kwargs)
    assert isinstance(out, pd.DataFrame)
    # Invariant 1: exactly one of answer / error on every row.
    assert (out["output"].notna() ^ out["output_error"].notna()).all()
    return out


def assert_all_answered(out: pd.DataFrame) -> None:
    assert out["output"].notna().all(), out.loc[out["output"].isna(), "output_error"]
    assert (out["output"] == "echo: Echo " + out["text"]).all()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/files"),
        ("POST", "/v1/batches"),
        ("GET", "/v1/batches/*"),
        ("GET", "/v1/files/*/content"),
    ],
)
@pytest.mark.parametrize("status", [429, 500])
def test_transient_http_errors_are_retried(
    emulator: Emulator, openai_client, method: str, path: str, status: int
) -> None:
    rule = {"method": method, "path": path, "status": status, "times": 2, "retry_after": 0}
    emulator.set_faults(FaultPlan(http_errors=[rule]))
    out = run(frame(), openai_client)
    assert_all_answered(out)
    stats = emulator.stats()
    assert stats["http_errors_injected"] == 2
    assert stats["batches_created"] == 1
    assert stats["uploads"] == 1
    assert stats["duplicate_submissions"] == 0


def test_authentication_error_is_clear_and_sends_nothing_twice(emulator: Emulator) -> None:
    emulator.set_faults(FaultPlan(http_errors=[{"path": "/v1/files", "status": 401}]))
    client = emulator.openai_client(max_retries=0)
    with pytest.raises(batchframe.AuthenticationError) as caught:
        run(frame(3), client)
    message = str(caught.value)
    assert "openai" in message.lower() and "key" in message.lower()
    assert "emulator-key" not in message


def test_truncated_download_is_fetched_again(emulator: Emulator, openai_client) -> None:
    emulator.set_faults(FaultPlan(truncate_downloads=1))
    out = run(frame(50), openai_client)
    assert_all_answered(out)
    stats = emulator.stats()
    assert stats["truncated_downloads"] == 1
    assert stats["batches_created"] == 1


def test_missing_lines_are_resubmitted_and_duplicates_ignored(
    emulator: Emulator, openai_client
) -> None:
    emulator.set_faults(FaultPlan(drop_lines=3, duplicate_lines=4, unknown_lines=2))
    out = run(frame(30), openai_client)
    assert_all_answered(out)
    stats = emulator.stats()
    assert stats["batches_created"] == 2  # the three dropped rows, and only those, again
    assert stats["requests_submitted"] == 33


def test_failed_validation_errors_every_row(emulator: Emulator, openai_client) -> None:
    emulator.set_faults(FaultPlan(fail_validation=1))
    out = run(frame(8), openai_client)
    assert out["output"].isna().all()
    assert out["output_error"].str.contains("batch failed", case=False).all(), out["output_error"]


def test_expired_batch_part_way_resubmits_the_rest(emulator: Emulator, openai_client) -> None:
    emulator.set_faults(FaultPlan(expire_batches=1))
    out = run(frame(40), openai_client)
    assert_all_answered(out)
    stats = emulator.stats()
    assert stats["batches_created"] == 2
    retried = [n for n in stats["submissions_by_body"].values() if n == 2]
    assert 0 < len(retried) < 40
    assert stats["requests_submitted"] == 40 + len(retried)


def test_row_error_shares(emulator: Emulator, openai_client) -> None:
    emulator.set_faults(FaultPlan(row_error_rate=0.2, row_server_error_rate=0.2))
    out = run(frame(100), openai_client)
    permanent = out["output_error"].notna()
    assert 5 < permanent.sum() < 40
    assert out.loc[permanent, "output_error"].str.contains("400|invalid", regex=True).all()
    stats = emulator.stats()
    # Only the 5xx rows went again, once each.
    assert max(stats["submissions_by_body"].values()) == 2
    assert stats["requests_submitted"] == 100 + stats["retryable_failures_by_body"].__len__()


def test_attempts_are_bounded(emulator: Emulator, openai_client) -> None:
    # Every server error rule fires on every attempt: after max_attempts the row gives up.
    emulator.set_faults(FaultPlan(expire_batches=10))
    out = run(frame(10), openai_client, max_attempts=2)
    assert emulator.stats()["batches_created"] == 2
    errors = out["output_error"].dropna()
    assert len(errors) > 0
    assert errors.str.contains("expired", case=False).all()
    assert errors.str.contains("2 attempts", case=False).all(), errors
