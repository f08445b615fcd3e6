"""Budgets before the job and the actual cost after it: max_cost, usage columns, summary()."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import batchframe
from batchframe.emulator import Emulator
from batchframe.errors import BudgetExceededError, InputError
from batchframe.estimate import Estimate, lookup
from batchframe.estimate.actual import CostSummary, result_costs, summarize
from batchframe.estimate.prices import clear_prices

MODEL = "gpt-4o-mini"
TEMPLATE = "Sentiment of: {review}"


@pytest.fixture(autouse=True)
def clean_prices(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("BATCHFRAME_PRICES", raising=False)
    clear_prices()
    yield
    clear_prices()


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"review": [f"review {i}: " + "ok " * (i % 11) for i in range(n)]})


# --- max_cost --------------------------------------------------------------------------------


def test_max_cost_refusal_says_by_how_much_and_what_fits(
    emulator: Emulator, openai_client: Any
) -> None:
    df = frame(200)
    est = df.llm.batch(TEMPLATE, model=MODEL, max_tokens=50, dry_run=True)
    assert isinstance(est, Estimate) and est.cost is not None
    budget = est.cost / 4
    with pytest.raises(BudgetExceededError) as info:
        df.llm.batch(TEMPLATE, model=MODEL, max_tokens=50, max_cost=budget, client=openai_client)
    message = str(info.value)
    over = est.cost - budget
    assert f"up to ${est.cost:.6f}" in message
    assert f"by ${over:.6f}" in message and "(300% over)" in message
    fit = est.rows_within(budget)
    assert 40 <= fit <= 60 and f"about {fit:,} of the 200 rows would fit" in message
    tokens = est.max_tokens_within(budget)
    assert tokens is not None and 1 <= tokens < 50
    assert f"max_tokens={tokens:,} instead of max_tokens=50" in message
    assert "Nothing was sent." in message
    assert info.value.estimate == est
    assert emulator.stats()["http_calls"] == {}
    assert batchframe.jobs().empty

    # The suggestions really fit.
    smaller = df.sample(fit, random_state=0).llm.batch(
        TEMPLATE, model=MODEL, max_tokens=50, dry_run=True
    )
    assert smaller.fits(budget * 1.05)  # rows differ in length: "about"
    shorter = df.llm.batch(TEMPLATE, model=MODEL, max_tokens=tokens, dry_run=True)
    assert shorter.fits(budget)


def test_within_budget_the_job_runs(emulator: Emulator, openai_client: Any) -> None:
    df = frame(20)
    est = df.llm.batch(TEMPLATE, model=MODEL, max_tokens=50, dry_run=True)
    assert est.cost is not None
    out = df.llm.batch(
        TEMPLATE, model=MODEL, max_tokens=50, max_cost=est.cost, client=openai_client
    )
    assert out["output"].notna().all()


def test_max_cost_with_an_unknown_price_is_refused_before_sending(
    emulator: Emulator, openai_client: Any
) -> None:
    df = frame(5)
    with pytest.raises(BudgetExceededError) as info:
        df.llm.batch(
            TEMPLATE, model="gpt-9-nova", max_tokens=10, max_cost=100.0, client=openai_client
        )
    message = str(info.value)
    assert "gpt-9-nova has no known price" in message
    assert "batchframe.set_price('gpt-9-nova', input=..., output=...)" in message
    assert "Nothing was sent." in message
    assert emulator.stats()["http_calls"] == {}


def test_max_cost_with_unbounded_output_is_refused(emulator: Emulator, openai_client: Any) -> None:
    with pytest.raises(BudgetExceededError, match="Set max_tokens"):
        frame(3).llm.batch(TEMPLATE, model="gpt-6-sol", max_cost=10.0, client=openai_client)
    assert emulator.stats()["http_calls"] == {}


def test_max_cost_must_be_a_number() -> None:
    for bad in (-1, "5", True, float("nan")):
        with pytest.raises(InputError, match="max_cost"):
            frame(3).llm.batch(TEMPLATE, model=MODEL, max_tokens=5, max_cost=bad)


def test_max_cost_on_a_finished_job_is_not_checked_again(
    emulator: Emulator, openai_client: Any
) -> None:
    df = frame(10)
    df.llm.batch(TEMPLATE, model=MODEL, max_tokens=20, client=openai_client)
    again = df.llm.batch(TEMPLATE, model=MODEL, max_tokens=20, max_cost=0.0, client=openai_client)
    assert again["output"].notna().all()  # from the store, at no cost


def test_an_unknown_model_runs_with_costs_unknown(emulator: Emulator, openai_client: Any) -> None:
    df = frame(4)
    job = df.llm.batch(
        TEMPLATE, model="gpt-9-nova", max_tokens=20, client=openai_client, usage=True, wait=False
    )
    out = job.result()
    assert "output_cost" not in out.columns  # tokens yes, an invented cost no
    assert out["output_input_tokens"].notna().all()
    summary = job.summary()
    assert summary.cost is None and summary.realtime_cost is None and summary.savings is None
    assert summary.estimated_cost is None
    assert "unknown" in repr(summary) and "$0.00" not in repr(summary)
    assert any("not zero" in note for note in summary.notes)


# --- the actual cost -------------------------------------------------------------------------


def test_summary_reports_tokens_cost_savings_and_the_estimate(
    emulator: Emulator, openai_client: Any
) -> None:
    df = frame(30)
    df = pd.concat([df, df.iloc[:6]], ignore_index=True)  # duplicates are paid once
    est = df.llm.batch(TEMPLATE, model=MODEL, max_tokens=40, dry_run=True)
    job = df.llm.batch(
        TEMPLATE, model=MODEL, max_tokens=40, client=openai_client, usage=True, wait=False
    )
    out = job.result()
    summary = job.summary()
    assert isinstance(summary, CostSummary)
    assert (summary.rows, summary.requests, summary.succeeded, summary.errored) == (36, 30, 30, 0)

    per_request = out.drop_duplicates("review")
    assert summary.input_tokens == per_request["output_input_tokens"].sum()
    assert summary.output_tokens == per_request["output_output_tokens"].sum()
    price = lookup(MODEL)
    assert price is not None
    realtime = (summary.input_tokens * price.input + summary.output_tokens * price.output) / 1e6
    assert summary.realtime_cost == pytest.approx(realtime)
    assert summary.cost == pytest.approx(realtime / 2)
    assert summary.savings == pytest.approx(realtime / 2)
    assert summary.cost == pytest.approx(per_request["output_cost"].sum())
    # Estimate versus actual: OpenAI input tokens are exact, the cost stays under the bound.
    assert summary.estimated_input_tokens == est.input_tokens == summary.input_tokens
    assert summary.input_tokens_vs_estimate == 1.0
    assert summary.estimated_cost == pytest.approx(est.cost)
    assert summary.estimated_output_tokens == est.output_tokens == 40 * 30
    assert summary.cost_vs_estimate is not None and 0 < summary.cost_vs_estimate <= 1
    assert summary.price_date == "2026-11-23"

    # Still reads like the dict it used to be.
    assert summary["cost"] == summary.cost and dict(summary)["job_id"] == job.id
    assert {
        "job_id",
        "state",
        "succeeded",
        "errored",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cost",
        "realtime_cost",
        "savings",
        "estimated_cost",
    } <= set(summary)
    assert summary.to_dict()["notes"] == []

    text = repr(summary)
    assert text.startswith(f"Cost of job {job.id} ({MODEL}, finished)")
    assert re.search(r"input tokens\s+[\d,]+\s+estimate [\d,]+", text)
    assert "realtime would cost" in text and "savings" in text
    page = summary._repr_html_()
    assert "<table" in page and "estimate" in page and job.id in page


def test_summary_from_another_process_view(emulator: Emulator, openai_client: Any) -> None:
    df = frame(8)
    job = df.llm.batch(TEMPLATE, model=MODEL, max_tokens=20, client=openai_client, wait=False)
    job.wait()
    attached = batchframe.attach(job.id, client=openai_client, progress=False)
    assert attached.summary().to_dict() == job.summary().to_dict()


def test_summary_with_a_pilot_bills_pilot_rows_at_realtime(
    emulator: Emulator, openai_client: Any
) -> None:
    df = frame(24)
    job = df.llm.batch(
        TEMPLATE,
        model=MODEL,
        max_tokens=40,
        client=openai_client,
        pilot=4,
        usage=True,
        wait=False,
        progress=False,
    )
    out = job.result()
    summary = job.summary()
    assert summary.pilot_requests == 4
    price = lookup(MODEL)
    assert price is not None
    realtime = (
        out["output_input_tokens"] * price.input + out["output_output_tokens"] * price.output
    ) / 1e6
    assert summary.realtime_cost == pytest.approx(realtime.sum())
    assert summary.cost == pytest.approx(out["output_cost"].sum())
    pilot_share = out["output_cost"].sum() - realtime.sum() / 2
    assert summary.pilot_cost == pytest.approx(2 * pilot_share)  # paid 2x what batch charges
    assert summary.realtime_cost / 2 < summary.cost < summary.realtime_cost
    assert summary.estimated_input_tokens == summary.input_tokens
    assert summary.estimated_cost is not None and summary.cost <= summary.estimated_cost
    assert "4 answered in realtime" in repr(summary)


def test_summary_counts_only_answered_requests(emulator: Emulator, openai_client: Any) -> None:
    df = pd.DataFrame({"review": ["fine", "EMU:400 broken", "also fine"]})
    job = df.llm.batch(
        TEMPLATE, model=MODEL, max_tokens=20, client=openai_client, usage=True, wait=False
    )
    out = job.result()
    summary = job.summary()
    assert summary.succeeded == 2 and summary.errored == 1
    assert summary.input_tokens == out["output_input_tokens"].sum()
    assert out.loc[1, "output_cost"] == 0
    assert any("not billed" in note for note in summary.notes)


# --- the arithmetic --------------------------------------------------------------------------


def results(**columns: Any) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base: dict[str, Any] = {
        "fate": ["ok"] * n,
        "input_tokens": [0] * n,
        "output_tokens": [0] * n,
        "cached_tokens": [0] * n,
        "cache_write_tokens": [0] * n,
    }
    base.update(columns)
    return pd.DataFrame(base)


def test_result_costs_batch_pilot_cache_and_bands() -> None:
    t = results(
        fate=["ok", "ok", "failed", "ok"],
        input_tokens=[1_000, 1_000, 5_000, 1_000],
        output_tokens=[100, 100, 0, 100],
        cached_tokens=[0, 0, 0, 600],
        shard=[0, -1, 0, 0],
    )
    costs = result_costs(MODEL, t)
    assert costs is not None
    billed, realtime = costs
    plain = (1_000 * 0.15 + 100 * 0.60) / 1e6
    assert realtime[0] == pytest.approx(plain) and billed[0] == pytest.approx(plain / 2)
    assert billed[1] == pytest.approx(plain)  # a pilot answer: realtime rate
    assert billed[2] == realtime[2] == 0  # not answered, not billed
    cached = (400 * 0.15 + 600 * 0.075 + 100 * 0.60) / 1e6
    assert realtime[3] == pytest.approx(cached)

    # Haiku 5.5 bills a whole request above 100K prompt tokens at its higher band.
    long = results(input_tokens=[100_000, 100_001], output_tokens=[10, 10])
    costs = result_costs("claude-haiku-5-5", long)
    assert costs is not None
    base = lookup("claude-haiku-5-5")
    assert base is not None
    assert costs[1][0] == pytest.approx(base.realtime_cost(100_000, 10))
    assert costs[1][1] == pytest.approx(base.band(100_001).realtime_cost(100_001, 10))
    assert costs[1][1] > 4 * costs[1][0]

    assert result_costs("gpt-9-nova", t) is None


def test_summarize_without_a_stored_estimate() -> None:
    t = results(input_tokens=[10, 20], output_tokens=[1, 2])
    s = summarize(
        job_id="j",
        state="finished",
        model=MODEL,
        rows=2,
        requests=2,
        succeeded=2,
        errored=0,
        results=t,
        estimate=None,
        estimated_cost=0.5,
    )
    assert s.estimated_cost == 0.5 and s.estimated_input_tokens is None
    assert s.input_tokens_vs_estimate is None
    assert "estimate ≤ $0.50" in repr(s)
    assert np.isclose(s.cost, (30 * 0.15 + 3 * 0.6) / 2e6)
