"""The OpenAI path end to end: a frame in, the emulator over real HTTP, a joined frame out."""

from __future__ import annotations

import pandas as pd

import batchframe
from batchframe.emulator import Emulator
from odd_labels import odd_labels


def tickets(n: int = 40) -> pd.DataFrame:
    labels = odd_labels(n)
    bodies = [f"ticket {i}: my order {{#{i}}} is late" for i in range(n)]
    if n >= 12:
        bodies[3] = "please {fix} this EMU:400"
        bodies[4] = "server hiccup EMU:500"
        bodies[5] = "slow lane EMU:expire"
        bodies[10] = bodies[11] = "identical prompt"
    return pd.DataFrame(
        {"body": bodies, "n": range(n), "keep": [f"k{i}" for i in range(n)]},
        index=pd.Index(labels, name="ticket"),
    )


def test_forty_odd_rows_round_trip(emulator: Emulator, openai_client) -> None:
    df = tickets()
    out = df.llm.batch("Triage: {body}", model="gpt-4o-mini", client=openai_client)

    # Same index, order and original columns, plus the two new ones.
    assert out.index.equals(df.index)
    assert list(out.columns) == ["body", "n", "keep", "output", "output_error"]
    pd.testing.assert_frame_equal(out[df.columns], df)

    errors = out["output_error"]
    failed = errors.notna()
    assert failed.sum() == 1, errors[failed]
    bad = out.iloc[3]
    assert pd.isna(bad["output"])
    assert "400" in bad["output_error"] or "invalid" in bad["output_error"].lower()

    ok = out[~failed]
    assert ok["output"].notna().all()
    # The emulator echoes the prompt: each answer belongs to its own row.
    expected = "echo: Triage: " + ok["body"]
    assert (ok["output"] == expected).all(), ok.loc[ok["output"] != expected, ["body", "output"]]
    assert out.iloc[10]["output"] == out.iloc[11]["output"]

    stats = emulator.stats()
    # 39 unique prompts submitted once; the 500 and the expired row exactly once more.
    assert stats["requests_submitted"] == 39 + 2
    assert stats["duplicate_submissions"] == 0
    retried = {body: count for body, count in stats["submissions_by_body"].items() if count > 1}
    assert len(retried) == 2
    assert all(count == 2 for count in retried.values())
    assert stats["batches_created"] == 2


def test_second_call_returns_stored_result_without_provider(
    emulator: Emulator, openai_client
) -> None:
    df = tickets(12)
    first = df.llm.batch("Say: {body}", model="gpt-4o-mini", client=openai_client)
    calls = emulator.stats()["http_calls"]
    again = df.llm.batch("Say: {body}", model="gpt-4o-mini", client=openai_client)
    pd.testing.assert_frame_equal(first, again)
    assert emulator.stats()["http_calls"] == calls
    assert len(batchframe.jobs()) == 1


def test_fresh_forces_a_new_job(emulator: Emulator, openai_client) -> None:
    df = tickets(6)
    df.llm.batch("Say: {body}", model="gpt-4o-mini", client=openai_client)
    df.llm.batch("Say: {body}", model="gpt-4o-mini", client=openai_client, fresh=True)
    assert emulator.stats()["batches_created"] == 2
    assert emulator.stats()["requests_submitted"] == 12
    assert len(batchframe.jobs()) == 2
