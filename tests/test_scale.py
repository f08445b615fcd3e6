"""Sharding, bounded concurrency and provider capacity limits."""

from __future__ import annotations

import threading

import pandas as pd

from batchframe.emulator import Emulator, FaultPlan


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"product {i}: a sturdy thing" for i in range(n)]})


def test_enqueued_token_limit_waits_and_resubmits(emulator: Emulator, openai_client) -> None:
    # Room for about two shards at a time: the others are refused and must wait, not fail.
    emulator.set_faults(FaultPlan(enqueued_token_limit=450))
    out = frame(60).llm.batch(
        "Describe {text}",
        model="gpt-4o-mini",
        client=openai_client,
        max_shard_requests=10,
        max_attempts=1,  # capacity refusals must not spend attempts
    )
    assert out["output"].notna().all(), out["output_error"].dropna().head()
    stats = emulator.stats()
    assert stats["batches_created"] > 6  # some creates were refused and made again
    assert stats["duplicate_submissions"] == 0
    assert max(stats["runs_by_body"].values()) == 1  # refused batches never ran


def test_shards_in_flight_are_bounded(emulator: Emulator, openai_client) -> None:
    seen: list[int] = []
    stop = threading.Event()
    watcher = emulator.openai_client(max_retries=3)

    def watch() -> None:
        while not stop.is_set():
            batches = watcher.batches.list(limit=100).data
            seen.append(
                sum(b.status in ("validating", "in_progress", "finalizing") for b in batches)
            )
            stop.wait(0.01)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        out = frame(40).llm.batch(
            "Describe {text}",
            model="gpt-4o-mini",
            client=openai_client,
            max_shard_requests=5,
            max_in_flight=2,
        )
    finally:
        stop.set()
        thread.join()
    assert out["output"].notna().all()
    assert emulator.stats()["batches_created"] == 8
    assert max(seen) == 2


def test_a_shard_too_big_for_the_queue_is_split_then_given_up(
    emulator: Emulator, openai_client
) -> None:
    # Short requests fit, the long one never does: the shard is halved until it stands alone.
    emulator.set_faults(FaultPlan(enqueued_token_limit=20))
    texts = ["short", "tiny", "x " * 200]  # the last alone exceeds the limit
    out = pd.DataFrame({"text": texts}).llm.batch(
        "{text}", model="gpt-4o-mini", client=openai_client
    )
    assert list(out["output"].iloc[:2]) == ["echo: short", "echo: tiny"]
    assert "token_limit_exceeded" in out["output_error"].iloc[2]
