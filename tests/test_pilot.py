"""Pilots against the emulator: realtime answers now, a refined estimate, never paid twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import batchframe
from batchframe.emulator import Emulator
from batchframe.errors import BudgetExceededError, InputError
from batchframe.estimate import Estimate, lookup
from batchframe.estimate.tokens import get_encoding
from batchframe.pilot import Pilot, PilotStore, sample_keys

MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
TEMPLATE = "Classify: {review}"


def frame(n: int = 40) -> pd.DataFrame:
    texts = [f"review {i} " + "très bien 🙂 " * (i % 6) for i in range(n)]
    return pd.DataFrame(
        {"review": texts, "stars": np.arange(n) % 5},
        index=pd.Index([f"id-{i}" for i in range(n)], name="id"),
    )


def echo_tokens(text: str) -> int:
    """The emulator answers 'echo: <prompt>'; its output tokens are that text's o200k count."""
    return len(get_encoding("o200k_base").encode_ordinary("echo: " + text))


def run_pilot(df: pd.DataFrame, client: Any, n: int = 8, **kw: Any) -> Pilot:
    args: dict[str, Any] = {"model": MODEL, "n": n, "client": client, "max_tokens": 64}
    args.update(kw)
    pilot = df.llm.pilot(TEMPLATE, **args)
    assert isinstance(pilot, Pilot)
    return pilot


# --- sampling ---------------------------------------------------------------------------------


def test_sample_is_deterministic_and_extends_with_n() -> None:
    a = sample_keys(1_000, 20, seed=0)
    assert np.array_equal(a, sample_keys(1_000, 20, seed=0))
    assert not np.array_equal(a, sample_keys(1_000, 20, seed=1))
    assert np.array_equal(sample_keys(1_000, 50, seed=0)[:20], a)
    assert len(np.unique(a)) == 20
    assert len(sample_keys(5, 20, seed=0)) == 5
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(InputError, match="pilot"):
            sample_keys(10, bad, seed=0)


# --- df.llm.pilot -----------------------------------------------------------------------------


def test_pilot_shows_answers_beside_inputs_and_refines_the_estimate(
    emulator: Emulator, openai_client: Any
) -> None:
    df = frame(40)
    pilot = run_pilot(df, openai_client, n=8)
    stats = emulator.stats()
    assert stats["realtime_calls"] == 8
    assert stats["batches_created"] == 0 and stats["uploads"] == 0

    answers = pilot.answers
    assert len(answers) == 8 and pilot.sampled == 8 and pilot.called == 8 and pilot.reused == 0
    assert answers.index.name == "id" and set(answers.index) <= set(df.index)
    keys = np.sort(sample_keys(40, 8, seed=0))
    assert list(answers.index) == [f"id-{k}" for k in keys]
    for label, row in answers.iterrows():
        prompt = "Classify: " + df.loc[label, "review"]
        assert row["review"] == df.loc[label, "review"]  # the input, beside...
        assert row["output"] == "echo: " + prompt  # ...its answer
        assert pd.isna(row["output_error"])
        assert row["output_tokens"] == echo_tokens(prompt)  # measured, not guessed
    assert "stars" not in answers.columns  # only the columns the template reads

    price = lookup(MODEL)
    assert price is not None
    realtime = (
        answers["input_tokens"].sum() * price.input + answers["output_tokens"].sum() * price.output
    ) / 1e6
    assert pilot.cost == pytest.approx(realtime)
    assert answers["cost"].sum() == pytest.approx(realtime)

    est = pilot.estimate
    assert isinstance(est, Estimate)
    assert est.requests == 40 and est.pilot_requests == 8 and est.requests_to_send == 32
    assert est.pilot_measured and est.pilot_cost == pytest.approx(realtime)
    mean = answers["output_tokens"].mean()
    assert est.output_tokens_expected == round(mean * 32)
    assert est.output_tokens == 64 * 32
    assert est.cost_expected is not None and est.cost is not None
    assert est.cost_expected < est.cost
    assert est.total_cost == pytest.approx(est.cost + realtime)
    assert est.realtime_cost == pytest.approx(2 * est.cost)
    assert "pilot" in est.output_expected_source


def test_pilot_reprs(openai_client: Any) -> None:
    df = frame(12)
    df.iloc[0, 0] = "<b>bold</b> & co"
    pilot = run_pilot(df, openai_client, n=12)
    text = repr(pilot)
    assert text.startswith(f"Pilot of 12 request(s) through {MODEL}'s realtime endpoint")
    assert "echo: Classify:" in text and "Estimate for gpt-4o-mini" in text
    assert "pilot             12 answered now" in text
    page = pilot._repr_html_()
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold" not in page
    assert "<table" in page and "Estimate for" in page


def test_rerunning_a_pilot_pays_nothing_again(emulator: Emulator, openai_client: Any) -> None:
    df = frame(40)
    run_pilot(df, openai_client, n=5)
    again = run_pilot(df, openai_client, n=5)
    assert again.called == 0 and again.reused == 5
    bigger = run_pilot(df, openai_client, n=12)  # same seed: extends the first five
    assert bigger.called == 7 and bigger.reused == 5
    assert emulator.stats()["realtime_calls"] == 12
    fresh = run_pilot(df, openai_client, n=5, fresh=True)
    assert fresh.called == 5
    assert emulator.stats()["realtime_calls"] == 17


def test_pilot_answers_are_stored_durably_as_they_arrive(
    openai_client: Any, batchframe_home: Path
) -> None:
    df = frame(20)
    run_pilot(df, openai_client, n=6)
    files = list((batchframe_home / "pilots").glob("*.jsonl"))
    assert len(files) == 1
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"
    lines = [json.loads(line) for line in files[0].read_text("utf-8").splitlines()]
    assert len(lines) == 6
    assert all(line["result"]["fate"] == "ok" for line in lines)
    assert all(line["parts"][0].startswith("Classify: review") for line in lines)
    # A line cut short by a crash mid-write is skipped, the rest still count.
    with files[0].open("ab") as stream:
        stream.write(b'{"parts": ["Classify: rev')
    spec = PilotStore(batchframe_home)
    assert len(spec.load(_spec(df, openai_client))) == 6


def _spec(df: pd.DataFrame, client: Any) -> Any:
    from batchframe.providers import make_provider

    backend = make_provider("openai", client)
    prepared = df.llm._prepare(
        TEMPLATE, None, backend, MODEL, {"max_tokens": 64}, None, None, "row_error", True
    )
    return prepared.spec


def test_different_parameters_do_not_share_answers(emulator: Emulator, openai_client: Any) -> None:
    df = frame(10)
    run_pilot(df, openai_client, n=4)
    other = run_pilot(df, openai_client, n=4, max_tokens=32)
    assert other.called == 4
    assert emulator.stats()["realtime_calls"] == 8


# --- the batch adopts the pilot ------------------------------------------------------------------


def test_batch_after_pilot_does_not_send_the_pilot_rows_again(
    emulator: Emulator, openai_client: Any, batchframe_home: Path
) -> None:
    df = frame(40)
    pilot = run_pilot(df, openai_client, n=8)
    out = df.llm.batch(TEMPLATE, model=MODEL, client=openai_client, max_tokens=64, usage=True)
    stats = emulator.stats()
    assert stats["realtime_calls"] == 8
    assert stats["requests_submitted"] == 40 - 8
    assert stats["duplicate_submissions"] == 0
    assert out["output_error"].isna().all()
    assert (out["output"] == "echo: Classify: " + df["review"]).all()
    for label in pilot.answers.index:
        assert out.loc[label, "output"] == pilot.answers.loc[label, "output"]
    # The pilot rows were paid at realtime rates: twice the batch rate for the same tokens.
    price = lookup(MODEL)
    assert price is not None
    rate = out["output_input_tokens"] * price.input + out["output_output_tokens"] * price.output
    rate = rate / 1e6
    is_pilot = out.index.isin(pilot.answers.index)
    assert np.allclose(out.loc[is_pilot, "output_cost"], rate[is_pilot])
    assert np.allclose(out.loc[~is_pilot, "output_cost"], rate[~is_pilot] / 2)

    job_dir = next((batchframe_home / "jobs").iterdir())
    assert (job_dir / "results" / "pilot.parquet").exists()
    assert json.loads((job_dir / "estimate.json").read_text())["pilot_requests"] == 8

    # Running the same call again re-attaches: nothing new is paid.
    df.llm.batch(TEMPLATE, model=MODEL, client=openai_client, max_tokens=64)
    assert emulator.stats()["requests_submitted"] == 32
    assert emulator.stats()["realtime_calls"] == 8


def test_batch_with_pilot_keyword(emulator: Emulator, openai_client: Any) -> None:
    df = frame(30)
    out = df.llm.batch(TEMPLATE, model=MODEL, client=openai_client, max_tokens=64, pilot=6)
    stats = emulator.stats()
    assert stats["realtime_calls"] == 6
    assert stats["requests_submitted"] == 30 - 6
    assert out["output_error"].isna().all() and len(out) == 30
    summary = batchframe.jobs()
    assert len(summary) == 1


def test_batch_pilot_is_shown_unless_progress_is_off(
    emulator: Emulator, openai_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    df = frame(10)
    df.llm.batch(
        TEMPLATE,
        model=MODEL,
        client=openai_client,
        max_tokens=64,
        pilot=3,
        wait=False,
        progress=False,
    ).wait()
    assert "Pilot of" not in capsys.readouterr().err
    df.llm.batch(
        "Label: {review}",
        model=MODEL,
        client=openai_client,
        max_tokens=64,
        pilot=3,
        progress="console",
    )
    err = capsys.readouterr().err
    assert "Pilot of 3 request(s)" in err and "echo: Label: review" in err
    assert "Estimate for gpt-4o-mini" in err


def test_dry_run_with_pilot_returns_the_refined_estimate_and_keeps_the_answers(
    emulator: Emulator, openai_client: Any
) -> None:
    df = frame(25)
    est = df.llm.batch(
        TEMPLATE, model=MODEL, client=openai_client, max_tokens=64, pilot=5, dry_run=True
    )
    assert isinstance(est, Estimate)
    assert est.pilot_requests == 5 and est.pilot_measured and est.output_tokens_expected
    assert emulator.stats()["realtime_calls"] == 5
    assert emulator.stats()["batches_created"] == 0
    assert batchframe.jobs().empty
    df.llm.batch(TEMPLATE, model=MODEL, client=openai_client, max_tokens=64, pilot=5)
    assert emulator.stats()["realtime_calls"] == 5
    assert emulator.stats()["requests_submitted"] == 20


def test_pilot_larger_than_the_job_answers_everything(
    emulator: Emulator, openai_client: Any
) -> None:
    df = frame(6)
    out = df.llm.batch(TEMPLATE, model=MODEL, client=openai_client, max_tokens=64, pilot=50)
    stats = emulator.stats()
    assert stats["realtime_calls"] == 6 and stats["batches_created"] == 0
    assert out["output"].notna().all()


def test_pilot_errors_go_into_the_batch(emulator: Emulator, openai_client: Any) -> None:
    df = frame(8)
    df["review"] = [f"EMU:500 review {i}" if i % 2 else f"review {i}" for i in range(8)]
    pilot = run_pilot(df, openai_client, n=8)
    assert pilot.succeeded == 4
    failed = pilot.answers["output_error"].dropna()
    assert len(failed) == 4 and failed.str.contains("goes into the batch").all()
    assert pilot.estimate.pilot_requests == 4
    out = df.llm.batch(TEMPLATE, model=MODEL, client=openai_client, max_tokens=64)
    assert emulator.stats()["requests_submitted"] >= 4
    assert out["output"].notna().all()


def test_duplicate_rows_are_one_pilot_request(emulator: Emulator, openai_client: Any) -> None:
    df = pd.DataFrame({"review": ["same"] * 10 + ["other"] * 10})
    pilot = run_pilot(df, openai_client, n=5)
    assert pilot.sampled == 2 and emulator.stats()["realtime_calls"] == 2
    assert list(pilot.answers.index) == [0, 10]  # the first row of each request
    assert any("only 2 distinct" in note for note in pilot.notes)


def test_budget_is_checked_before_the_pilot_spends(emulator: Emulator, openai_client: Any) -> None:
    df = frame(30)
    with pytest.raises(BudgetExceededError, match="Nothing was sent"):
        df.llm.batch(
            TEMPLATE, model=MODEL, client=openai_client, max_tokens=64, pilot=5, max_cost=1e-7
        )
    assert emulator.stats()["http_calls"] == {}


def test_pilot_on_an_existing_job_never_pays_twice(emulator: Emulator, openai_client: Any) -> None:
    df = frame(12)
    df.llm.batch(TEMPLATE, model=MODEL, client=openai_client, max_tokens=64)
    pilot = run_pilot(df, openai_client, n=4)
    assert pilot.called == 0 and pilot.reused == 4
    assert pilot.answers["output"].notna().all()
    assert emulator.stats()["realtime_calls"] == 0

    # A job submitted but not collected: its requests are not called in realtime.
    df2 = frame(12).assign(review=lambda d: "again " + d["review"])
    job = df2.llm.batch(TEMPLATE, model=MODEL, client=openai_client, max_tokens=64, wait=False)
    job.wait_submitted()
    pending = run_pilot(df2, openai_client, n=4)
    assert emulator.stats()["realtime_calls"] == 0
    assert pending.called == 0
    job.wait()


# --- Claude ---------------------------------------------------------------------------------


def test_claude_pilot_calibrates_the_token_approximation(
    emulator: Emulator, anthropic_client: Any
) -> None:
    df = frame(30)
    model = "claude-sonnet-5-5"
    before = df.llm.batch(TEMPLATE, model=model, max_tokens=64, dry_run=True)
    pilot = df.llm.pilot(TEMPLATE, model=model, n=6, client=anthropic_client, max_tokens=64)
    est = pilot.estimate
    assert "calibrated" in est.input_tokens_method
    assert est.input_tokens_error < before.input_tokens_error
    exact = df.llm.batch(
        TEMPLATE, model=model, max_tokens=64, dry_run=True, exact=True, client=anthropic_client
    )
    # The calibrated figure for the 24 requests still to send is close to the exact one.
    to_send = est.input_tokens
    exact_all = exact.input_tokens
    share = exact_all * 24 / 30
    assert abs(to_send / share - 1) < 0.15
    assert abs(before.input_tokens / exact_all - 1) > abs(to_send / share - 1)

    out = df.llm.batch(TEMPLATE, model=model, max_tokens=64, client=anthropic_client)
    stats = emulator.stats()
    assert stats["realtime_calls"] == 6 and stats["requests_submitted"] == 24
    assert out["output"].notna().all()


def test_claude_pilot_prices_at_realtime(anthropic_client: Any) -> None:
    df = frame(10)
    pilot = df.llm.pilot(TEMPLATE, model=CLAUDE, n=3, client=anthropic_client, max_tokens=64)
    price = lookup(CLAUDE)
    assert price is not None
    answers = pilot.answers
    realtime = (
        answers["input_tokens"].sum() * price.input + answers["output_tokens"].sum() * price.output
    ) / 1e6
    assert pilot.cost == pytest.approx(realtime)


def test_pilot_answers_are_typed_like_the_batch(emulator: Emulator, openai_client: Any) -> None:
    df = frame(10)
    labels = ["positive", "negative", "neutral"]
    pilot = run_pilot(df, openai_client, n=4, choices=labels, output="label")
    assert isinstance(pilot.answers["label"].dtype, pd.CategoricalDtype)
    assert list(pilot.answers["label"].cat.categories) == labels
    assert pilot.answers["label"].notna().all()
    out = df.llm.batch(
        TEMPLATE, model=MODEL, client=openai_client, max_tokens=64, choices=labels, output="label"
    )
    assert emulator.stats()["requests_submitted"] == 6
    for label in pilot.answers.index:
        assert out.loc[label, "label"] == pilot.answers.loc[label, "label"]


def test_pilot_through_the_responses_endpoint(emulator: Emulator, openai_client: Any) -> None:
    df = frame(6)
    pilot = run_pilot(df, openai_client, n=2, endpoint="/v1/responses")
    assert emulator.stats()["http_calls"] == {"POST /v1/responses": 2}
    assert pilot.answers["output"].str.startswith("echo: Classify:").all()
    assert pilot.answers["output_tokens"].gt(0).all()


def test_pilot_without_a_key_says_so_and_sends_nothing(batchframe_home: Path) -> None:
    with pytest.raises(batchframe.ConfigurationError, match="OPENAI_API_KEY"):
        frame(5).llm.pilot(TEMPLATE, model=MODEL, n=2, max_tokens=8)
    assert not list((batchframe_home / "pilots").glob("*.jsonl"))


def test_pilot_against_an_unreachable_server_is_a_provider_error() -> None:
    import openai

    client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(batchframe.ProviderUnavailableError, match="pilot request"):
        frame(5).llm.pilot(TEMPLATE, model=MODEL, n=2, max_tokens=8, client=client)
