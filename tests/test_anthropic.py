"""The Anthropic Message Batches path, one behaviour per test.

Everything runs against the bundled emulator over real HTTP with the real ``anthropic`` SDK;
decoding is also checked on small fixtures (tests/fixtures/anthropic/) modelled on recorded
provider files, and, when present, on the recorded files themselves.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from anthropic.types.messages import MessageBatch

import batchframe
from batchframe.emulator import Emulator, FaultPlan
from batchframe.emulator.fates import canonical_body_hash
from batchframe.errors import (
    AuthenticationError,
    ConfigurationError,
    InputError,
    ProviderRequestError,
    ProviderUnavailableError,
    RateLimitError,
)
from batchframe.estimate.prices import lookup
from batchframe.outcomes import settle
from batchframe.providers.anthropic import DEFAULT_MAX_TOKENS, AnthropicProvider, _status
from odd_labels import odd_labels

MODEL = "claude-haiku-4-5"
FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
# ../shared/recorded beside the checkout (as in CI and here), when present.
RECORDED = Path(__file__).resolve().parents[2] / "shared" / "recorded"
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def odd_frame(n: int = 40) -> pd.DataFrame:
    labels = odd_labels(n)
    labels[-1] = "dup"  # the duplicated label also far apart
    reviews = [f"review {i}: the {{box}} arrived {{{{late}}}} }} {{" for i in range(n)]
    return pd.DataFrame(
        {"review": reviews, "n": range(n)}, index=pd.Index(labels, name="ticket/ 名")
    )


def answer(prompt: str) -> str:
    """The emulator's deterministic answer: an echo of the last user message."""
    return "echo: " + prompt


def params_hash(user: str, *, system: str | None = None, **extra: Any) -> str:
    """The emulator's hash of the exact ``params`` batchframe should send for ``user``."""
    params: dict[str, Any] = {"model": MODEL, "max_tokens": DEFAULT_MAX_TOKENS}
    if system is not None:
        params["system"] = system
    params["messages"] = [{"role": "user", "content": user}]
    params.update(extra)
    return canonical_body_hash(params)


def submissions(emu: Emulator, user: str, **kwargs: Any) -> int:
    return int(emu.stats()["submissions_by_body"].get(params_hash(user, **kwargs), 0))


def results_order(emu: Emulator, client: Any, batch_id: str) -> list[str]:
    return [line.custom_id for line in client.messages.batches.results(batch_id)]


# -- the joined frame -----------------------------------------------------------------------


def test_forty_rows_with_an_odd_index_round_trip(emulator: Emulator, anthropic_client) -> None:
    df = odd_frame(40)
    out = df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client)

    assert out.index.equals(df.index)
    assert out.index.name == df.index.name
    assert list(out.columns) == ["review", "n", "output", "output_error"]
    pd.testing.assert_frame_equal(out[df.columns], df)
    assert out["output_error"].isna().all(), out["output_error"].dropna()
    assert list(out["output"]) == [answer(f"Classify: {r}") for r in df["review"]]
    # Both rows labelled "dup" (positions 5, 6 and 39) keep their own answers.
    dup = out.loc["dup"]
    assert list(dup["n"]) == [5, 6, 39]
    assert list(dup["output"]) == [answer(f"Classify: {r}") for r in df.loc["dup", "review"]]

    stats = emulator.stats()
    assert stats["batches_created"] == 1
    assert stats["requests_submitted"] == 40


def test_custom_ids_meet_anthropics_rule_whatever_the_index(emulator, anthropic_client) -> None:
    df = odd_frame(12)
    df.index = pd.Index(["x" * 200, "/", " ", "ü", "a b", "-", "_", "1", "1", "$", "%", "é/è"])
    out = df.llm.batch("Say: {review}", model=MODEL, client=anthropic_client)
    assert out["output_error"].isna().all()
    batch_id = emulator.stats()["batch_ids"][0]
    ids = results_order(emulator, anthropic_client, batch_id)
    assert len(ids) == 12
    assert all(CUSTOM_ID.match(i) for i in ids), ids


def test_braces_in_data_are_literal_text(emulator: Emulator, anthropic_client) -> None:
    values = ["{review}", "{0}", "{{double}}", "}{", "{__class__}", "a {b} c", "{", "}"]
    df = pd.DataFrame({"review": values})
    out = df.llm.batch("Text: {review}!", model=MODEL, client=anthropic_client)
    assert out["output_error"].isna().all()
    assert list(out["output"]) == [answer(f"Text: {v}!") for v in values]
    for v in values:
        assert submissions(emulator, f"Text: {v}!") == 1


# -- row fates ------------------------------------------------------------------------------


def test_invalid_request_row_is_kept_as_an_error_and_not_retried(
    emulator, anthropic_client
) -> None:
    df = pd.DataFrame({"review": ["fine", "broken EMU:400", "also fine"]}, index=["a", "b", "c"])
    out = df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client)

    bad = out.loc["b"]
    assert pd.isna(bad["output"])
    assert bad["output_error"].startswith("invalid_request_error: ")
    assert "Injected permanent error (EMU:400)" in bad["output_error"]  # the provider's words
    assert out.loc[["a", "c"], "output_error"].isna().all()
    assert list(out.loc[["a", "c"], "output"]) == [
        answer("Classify: fine"),
        answer("Classify: also fine"),
    ]
    assert submissions(emulator, "Classify: broken EMU:400") == 1
    assert emulator.stats()["batches_created"] == 1


@pytest.mark.parametrize("trigger", ["EMU:500", "EMU:429", "EMU:expire"])
def test_transient_row_is_resubmitted_once_and_succeeds(
    emulator, anthropic_client, trigger
) -> None:
    df = pd.DataFrame({"review": ["one", f"two {trigger}", "three"]})
    out = df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client)

    assert out["output_error"].isna().all(), out["output_error"].dropna()
    assert out.loc[1, "output"] == answer(f"Classify: two {trigger}")
    stats = emulator.stats()
    assert submissions(emulator, f"Classify: two {trigger}") == 2
    assert submissions(emulator, "Classify: one") == 1
    assert submissions(emulator, "Classify: three") == 1
    assert stats["batches_created"] == 2
    assert list(stats["custom_ids_by_batch"].values()) == [3, 1]
    assert stats["duplicate_submissions"] == 0


def test_api_error_and_expired_rows_in_one_job(emulator: Emulator, anthropic_client) -> None:
    df = odd_frame(40)
    df.iloc[7, 0] = "server hiccup EMU:500"
    df.iloc[20, 0] = "slow lane EMU:expire"
    df.iloc[30, 0] = "bad one EMU:400"
    out = df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client)

    errors = out["output_error"]
    assert errors.notna().sum() == 1
    assert "EMU:400" in errors.iloc[30]
    assert out.iloc[7]["output"] == answer("Classify: server hiccup EMU:500")
    assert out.iloc[20]["output"] == answer("Classify: slow lane EMU:expire")
    stats = emulator.stats()
    assert stats["requests_submitted"] == 40 + 2
    assert stats["duplicate_submissions"] == 0
    assert sorted(stats["submissions_by_body"].values()) == [1] * 38 + [2, 2]


def test_batch_expiring_part_way_resubmits_only_unfinished_rows(anthropic_client) -> None:
    with Emulator(processing_seconds=0.2, seed=3, faults=FaultPlan(expire_batches=1)) as emu:
        client = emu.anthropic_client(max_retries=0)
        df = pd.DataFrame({"review": [f"item {i}" for i in range(20)]})
        out = df.llm.batch("Classify: {review}", model=MODEL, client=client)
        assert out["output_error"].isna().all()
        assert list(out["output"]) == [answer(f"Classify: item {i}") for i in range(20)]
        stats = emu.stats()
        assert stats["batches_created"] == 2
        assert list(stats["custom_ids_by_batch"].values()) == [20, 10]  # half expired
        assert stats["duplicate_submissions"] == 0
        assert max(stats["submissions_by_body"].values()) == 2


def test_row_server_errors_at_a_rate_are_all_recovered(anthropic_client) -> None:
    plan = FaultPlan(row_server_error_rate=0.3, row_error_rate=0.1)
    with Emulator(processing_seconds=0.2, seed=11, faults=plan) as emu:
        client = emu.anthropic_client(max_retries=0)
        df = pd.DataFrame({"review": [f"item {i}" for i in range(60)]})
        out = df.llm.batch("Classify: {review}", model=MODEL, client=client)
        failed = out["output_error"].notna()
        stats = emu.stats()
        retried = sum(1 for n in stats["submissions_by_body"].values() if n == 2)
        assert 0 < failed.sum() < 20  # only the permanent 4xx share
        assert out.loc[failed, "output_error"].str.startswith("invalid_request_error").all()
        assert out.loc[~failed, "output"].notna().all()
        assert retried > 0
        assert stats["requests_submitted"] == 60 + retried
        assert stats["duplicate_submissions"] == 0


def test_identical_prompts_are_sent_once(emulator: Emulator, anthropic_client) -> None:
    texts = ["same", "other", "same", "same", "other", "third"] * 5
    df = pd.DataFrame({"review": texts}, index=[f"row {i}" for i in range(30)])
    out = df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client)

    assert list(out["output"]) == [answer(f"Classify: {t}") for t in texts]
    stats = emulator.stats()
    assert stats["requests_submitted"] == 3
    assert submissions(emulator, "Classify: same") == 1


def test_results_arrive_shuffled_and_are_joined_by_key(emulator, anthropic_client) -> None:
    df = pd.DataFrame({"review": [f"item {i}" for i in range(40)]})
    out = df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client)

    batch_id = emulator.stats()["batch_ids"][0]
    order = results_order(emulator, anthropic_client, batch_id)
    assert sorted(order) == sorted(f"r{i}" for i in range(40))
    assert order != [f"r{i}" for i in range(40)]  # the file really is out of order
    assert list(out["output"]) == [answer(f"Classify: item {i}") for i in range(40)]


# -- the request body -----------------------------------------------------------------------


def test_system_prompt_is_anthropics_top_level_system(emulator, anthropic_client, tmp_path) -> None:
    df = pd.DataFrame({"review": ["great", "awful"]})
    system = "Answer with one word."
    out = df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client, system=system)

    assert out["output_error"].isna().all()
    # The exact params the emulator received: system at the top level, one user message.
    assert submissions(emulator, "Classify: great", system=system) == 1
    assert submissions(emulator, "Classify: awful", system=system) == 1
    assert emulator.stats()["requests_submitted"] == 2

    path = df.llm.to_jsonl(tmp_path / "req.jsonl", "Classify: {review}", model=MODEL, system=system)
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert lines[0] == {
        "custom_id": "r0",
        "params": {
            "model": MODEL,
            "system": system,
            "messages": [{"role": "user", "content": "Classify: great"}],
            "max_tokens": DEFAULT_MAX_TOKENS,
        },
    }


def test_system_message_pair_and_multi_turn_templates(emulator, anthropic_client) -> None:
    df = pd.DataFrame({"review": ["great"]})
    template = [
        ("system", "Be brief about {review}."),
        ("user", "Review: {review}"),
        ("assistant", "Noted."),
        ("user", "Label it: {review}"),
    ]
    out = df.llm.batch(template, model=MODEL, client=anthropic_client)
    assert out.loc[0, "output"] == answer("Label it: great")
    params = {
        "model": MODEL,
        "system": "Be brief about great.",
        "messages": [
            {"role": "user", "content": "Review: great"},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "Label it: great"},
        ],
        "max_tokens": DEFAULT_MAX_TOKENS,
    }
    assert emulator.stats()["submissions_by_body"] == {canonical_body_hash(params): 1}

    with pytest.raises(InputError, match="one system prompt"):
        df.llm.batch(
            [("user", "{review}"), ("system", "late")], model=MODEL, client=anthropic_client
        )
    with pytest.raises(InputError, match="start with a user message"):
        df.llm.batch([("assistant", "{review}")], model=MODEL, client=anthropic_client)


def test_max_tokens_defaults_to_1024_and_can_be_set(emulator, anthropic_client) -> None:
    assert DEFAULT_MAX_TOKENS == 1024
    df = pd.DataFrame({"review": ["a fairly long review text that goes on and on for a while"]})
    df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client)
    prompt = "Classify: " + df.loc[0, "review"]
    assert submissions(emulator, prompt) == 1  # sent with max_tokens=1024

    out = df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client, max_tokens=3)
    assert emulator.stats()["submissions_by_body"][params_hash(prompt, max_tokens=3)] == 1
    # The emulator stops at 3 tokens with stop_reason max_tokens: a clear, actionable error.
    assert pd.isna(out.loc[0, "output"])
    assert "truncated" in out.loc[0, "output_error"]
    assert "max_tokens" in out.loc[0, "output_error"]

    # OpenAI's spellings are accepted as the same thing.
    df.llm.batch(
        "Classify: {review}", model=MODEL, client=anthropic_client, max_completion_tokens=500
    )
    assert emulator.stats()["submissions_by_body"][params_hash(prompt, max_tokens=500)] == 1


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"max_tokens": 0}, "max_tokens must be a whole number >= 1"),
        ({"max_tokens": 2.5}, "max_tokens must be a whole number >= 1"),
        ({"max_tokens": 100_000}, "more than claude-haiku-4-5 can produce"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "budget_tokens"),
        ({"response_format": {"type": "json_object"}}, "schema= or choices="),
        ({"stop": ["\n"]}, "stop_sequences"),
        ({"messages": []}, "set by batchframe"),
    ],
)
def test_bad_parameters_fail_before_anything_is_sent(
    emulator, anthropic_client, params, match
) -> None:
    df = pd.DataFrame({"review": ["x"]})
    with pytest.raises(InputError, match=match):
        df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client, **params)
    assert emulator.stats()["http_calls"] == {}
    assert len(batchframe.jobs()) == 0


def test_sampling_parameters_are_left_out_with_a_warning(emulator, anthropic_client) -> None:
    df = pd.DataFrame({"review": ["x"]})
    with pytest.warns(UserWarning, match="temperature, top_p"):
        out = df.llm.batch(
            "Classify: {review}", model=MODEL, client=anthropic_client, temperature=0, top_p=0.9
        )
    assert out["output_error"].isna().all()
    assert submissions(emulator, "Classify: x") == 1  # the body has no sampling parameters


def test_other_parameters_pass_through_unchanged(emulator, anthropic_client) -> None:
    df = pd.DataFrame({"review": ["x"]})
    extra = {"stop_sequences": ["END"], "metadata": {"user_id": "u-1"}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client, **extra)
    assert out["output_error"].isna().all()
    assert submissions(emulator, "Classify: x", **extra) == 1


def test_structured_answers_use_output_config(emulator, anthropic_client, tmp_path) -> None:
    df = pd.DataFrame({"review": ["good", "bad EMU:malformed", "rude EMU:refuse"]})
    out = df.llm.batch(
        "Classify: {review}", model=MODEL, client=anthropic_client, choices=["pos", "neg"]
    )
    assert out.loc[0, "output"] in ("pos", "neg")
    assert list(out["output"].cat.categories) == ["pos", "neg"]
    assert out.loc[1, "output_error"].startswith("invalid_json")
    assert out.loc[2, "output_error"].startswith("refusal")
    assert out["output"].isna().sum() == 2

    path = df.llm.to_jsonl(
        tmp_path / "req.jsonl", "Classify: {review}", model=MODEL, choices=["pos", "neg"]
    )
    params = json.loads(path.read_text("utf-8").splitlines()[0])["params"]
    assert params["output_config"]["format"]["type"] == "json_schema"
    assert "pos" in json.dumps(params["output_config"]["format"]["schema"])
    assert "response_format" not in params


# -- usage ----------------------------------------------------------------------------------


class CacheReportingTransport(httpx2.BaseTransport):
    """Real HTTP to the emulator; results lines gain prompt-cache usage as the API reports it.

    The emulator reports no prompt caching, so this stands in for a provider whose cache was
    hit: 2,000 tokens read and 300 written per answer, on top of the uncached input tokens.
    """

    READ, WRITE = 2_000, 300

    def __init__(self) -> None:
        self.inner = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self.inner.handle_request(request)
        if not request.url.path.endswith("/results") or response.status_code != 200:
            return response
        body = response.read()
        response.close()
        lines = []
        for raw in body.decode("utf-8").splitlines():
            line = json.loads(raw)
            if line["result"]["type"] == "succeeded":
                usage = line["result"]["message"]["usage"]
                usage["cache_read_input_tokens"] = self.READ
                usage["cache_creation_input_tokens"] = self.WRITE
            lines.append(json.dumps(line) + "\n")
        content = "".join(lines).encode("utf-8")
        return httpx2.Response(
            200, headers={"content-type": "application/x-jsonl"}, content=content, request=request
        )

    def close(self) -> None:
        self.inner.close()


def test_usage_columns_include_cache_tokens(emulator: Emulator, anthropic_client) -> None:
    df = pd.DataFrame({"review": ["short", "a somewhat longer review", "bad EMU:400"]})
    out = df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client, usage=True)
    cols = ["output_input_tokens", "output_output_tokens", "output_cached_tokens"]
    cols += ["output_cache_write_tokens", "output_cost"]
    assert list(out.columns) == ["review", "output", "output_error", *cols]

    batch_id = emulator.stats()["batch_ids"][0]
    lines = {
        line.custom_id: line.result for line in anthropic_client.messages.batches.results(batch_id)
    }
    for i in (0, 1):
        usage = lines[f"r{i}"].message.usage
        assert out.loc[i, "output_input_tokens"] == usage.input_tokens
        assert out.loc[i, "output_output_tokens"] == usage.output_tokens
        assert out.loc[i, "output_cached_tokens"] == 0
        assert out.loc[i, "output_cache_write_tokens"] == 0
    assert out.loc[:1, "output_cost"].gt(0).all()
    assert out.loc[2, cols[:4]].isna().all()  # an errored row used no tokens
    assert out.loc[2, "output_cost"] == 0


def test_cache_reads_and_writes_are_counted_and_priced(emulator: Emulator) -> None:
    transport = CacheReportingTransport()
    client = emulator.anthropic_client(
        max_retries=0, http_client=httpx2.Client(transport=transport)
    )
    df = pd.DataFrame({"review": ["short", "a somewhat longer review"]})
    out = df.llm.batch("Classify: {review}", model=MODEL, client=client, usage=True)

    read, write = CacheReportingTransport.READ, CacheReportingTransport.WRITE
    assert (out["output_cached_tokens"] == read).all()
    assert (out["output_cache_write_tokens"] == write).all()
    # input_tokens counts every prompt token, as OpenAI's does: uncached + read + written.
    uncached = out["output_input_tokens"] - read - write
    assert (uncached > 0).all() and (uncached < 50).all()

    price = lookup(MODEL)
    assert price is not None and price.cache_read is not None and price.cache_write_5m is not None
    expected = (
        (
            uncached * price.input
            + read * price.cache_read
            + write * price.cache_write_5m
            + out["output_output_tokens"] * price.output
        )
        * 1e-6
        * price.batch_discount
    )
    np.testing.assert_allclose(out["output_cost"].astype(float), expected.astype(float))

    summary = batchframe.attach(emulator_job_id()).summary()
    assert summary["cached_tokens"] == 2 * read
    assert summary["cost"] == pytest.approx(float(expected.sum()))


def emulator_job_id() -> str:
    return str(batchframe.jobs()["job_id"].iloc[0])


# -- shards, downloads, cancel --------------------------------------------------------------


def test_shards_respect_the_request_limit_and_all_rows_join(emulator, anthropic_client) -> None:
    df = odd_frame(40)
    out = df.llm.batch(
        "Classify: {review}", model=MODEL, client=anthropic_client, max_shard_requests=7
    )
    assert out["output_error"].isna().all()
    assert list(out["output"]) == [answer(f"Classify: {r}") for r in df["review"]]
    stats = emulator.stats()
    assert stats["batches_created"] == 6
    assert sorted(stats["custom_ids_by_batch"].values()) == [5, 7, 7, 7, 7, 7]
    assert stats["requests_submitted"] == 40
    assert AnthropicProvider.limits.max_requests == 100_000
    assert AnthropicProvider.limits.max_bytes <= 256_000_000


def test_a_dropped_results_stream_resumes_without_loss_or_duplicates(anthropic_client) -> None:
    with Emulator(processing_seconds=0.2, seed=5, faults=FaultPlan(truncate_downloads=1)) as emu:
        client = emu.anthropic_client(max_retries=0)
        df = odd_frame(40)
        out = df.llm.batch("Classify: {review}", model=MODEL, client=client)
        assert out["output_error"].isna().all()
        assert list(out["output"]) == [answer(f"Classify: {r}") for r in df["review"]]
        stats = emu.stats()
        assert stats["truncated_downloads"] == 1
        assert stats["downloads"] == 2
        assert stats["batches_created"] == 1  # nothing resubmitted, nothing paid twice
        assert stats["requests_submitted"] == 40


@pytest.mark.parametrize(
    "plan",
    [FaultPlan(duplicate_lines=5), FaultPlan(unknown_lines=3), FaultPlan(drop_lines=2)],
    ids=["duplicated", "unknown", "dropped"],
)
def test_odd_results_files_still_give_one_answer_per_row(plan: FaultPlan) -> None:
    with Emulator(processing_seconds=0.2, seed=5, faults=plan) as emu:
        client = emu.anthropic_client(max_retries=0)
        df = pd.DataFrame({"review": [f"item {i}" for i in range(20)]})
        out = df.llm.batch("Classify: {review}", model=MODEL, client=client)
        assert out["output_error"].isna().all()
        assert list(out["output"]) == [answer(f"Classify: item {i}") for i in range(20)]
        stats = emu.stats()
        # Only rows missing from the results (even after a second download) are sent again,
        # once; the emulator counts those as duplicates since it did answer them.
        assert stats["requests_submitted"] == 20 + plan.drop_lines
        assert stats["duplicate_submissions"] == plan.drop_lines
        assert stats["downloads"] == (3 if plan.drop_lines else 1)


def wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def test_cancel_leaves_every_unfinished_row_with_an_error(anthropic_client) -> None:
    with Emulator(processing_seconds=0.2, seed=1, faults=FaultPlan(stall_batches=1)) as emu:
        client = emu.anthropic_client(max_retries=0)
        df = odd_frame(12)
        job = df.llm.batch("Classify: {review}", model=MODEL, client=client, wait=False)
        wait_for(lambda: emu.stats()["batches_created"] == 1)
        job.cancel()
        out = job.result(timeout=30)

        assert out.index.equals(df.index)
        assert out["output"].isna().all()
        assert out["output_error"].str.contains("cancel", case=False).all(), out["output_error"]
        assert job.record.state == "cancelled"
        stats = emu.stats()
        assert stats["cancels"] == 1
        assert stats["batches_created"] == 1  # cancelled rows are not resubmitted


def test_cancel_part_way_keeps_finished_answers() -> None:
    with Emulator(processing_seconds=100, seed=2) as emu:
        client = emu.anthropic_client(max_retries=0)
        df = pd.DataFrame({"review": [f"item {i}" for i in range(10)]})
        job = df.llm.batch("Classify: {review}", model=MODEL, client=client, wait=False)
        wait_for(lambda: emu.stats()["batches_created"] == 1)
        emu.advance(55)  # about half the rows are done
        job.cancel()
        emu.advance(11)  # cancelling takes a while (10 % of the processing time here)
        out = job.result(timeout=30)

        answered = out["output"].notna()
        assert 0 < answered.sum() < 10
        assert out["output_error"].isna().eq(answered).all()  # exactly one of the two
        assert out.loc[~answered, "output_error"].str.contains("cancel").all()
        assert list(out.loc[answered, "output"]) == [
            answer(f"Classify: {r}") for r in df.loc[answered, "review"]
        ]
        assert emu.stats()["batches_created"] == 1


def test_a_batch_cancelled_elsewhere_is_resubmitted() -> None:
    """canceled results the user did not ask for (console, another tool) are retryable."""
    with Emulator(processing_seconds=0.2, seed=1, faults=FaultPlan(stall_batches=1)) as emu:
        client = emu.anthropic_client(max_retries=0)
        df = pd.DataFrame({"review": [f"item {i}" for i in range(6)]})
        job = df.llm.batch("Classify: {review}", model=MODEL, client=client, wait=False)
        wait_for(lambda: emu.stats()["batches_created"] == 1)
        client.messages.batches.cancel(emu.stats()["batch_ids"][0])
        out = job.result(timeout=30)

        assert out["output_error"].isna().all(), out["output_error"].dropna()
        assert list(out["output"]) == [answer(f"Classify: item {i}") for i in range(6)]
        assert job.record.state == "finished"
        stats = emu.stats()
        assert list(stats["custom_ids_by_batch"].values()) == [6, 6]
        assert stats["duplicate_submissions"] == 0


def test_cancel_while_the_batch_is_being_created_still_cancels_it() -> None:
    """A cancel that lands before the batch id is stored is carried out at the next poll."""
    with Emulator(processing_seconds=0.2, seed=1, faults=FaultPlan(stall_batches=1)) as emu:
        client = emu.anthropic_client(max_retries=0)
        df = pd.DataFrame({"review": ["a", "b"]})
        job = df.llm.batch("Classify: {review}", model=MODEL, client=client, wait=False)
        wait_for(lambda: emu.stats()["batches_created"] == 1)
        # The cancel flag without a remote cancel: what BatchJob.cancel() leaves behind when
        # it runs while the shard is still "creating" and has no batch id to cancel yet.
        job._store.update_job(job.id, cancel_requested=1, state="cancelling")
        out = job.result(timeout=30)
        assert out["output_error"].str.contains("cancel").all()
        stats = emu.stats()
        assert stats["batches_created"] == 1
        assert stats["cancels"] == 1


# -- provider choice and clients ------------------------------------------------------------


def test_provider_is_inferred_from_claude_names_and_overridable(emulator, anthropic_client) -> None:
    df = pd.DataFrame({"review": ["x"]})
    df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client)
    assert batchframe.jobs()["provider"].tolist() == ["anthropic"]

    # A gateway name that is not claude-*: provider= says who serves it.
    out = df.llm.batch(
        "Classify: {review}",
        model="my-gateway-model",
        provider="anthropic",
        client=anthropic_client,
    )
    assert out.loc[0, "output"] == answer("Classify: x")
    gateway = {"model": "my-gateway-model", "max_tokens": DEFAULT_MAX_TOKENS}
    gateway["messages"] = [{"role": "user", "content": "Classify: x"}]
    assert emulator.stats()["submissions_by_body"][canonical_body_hash(gateway)] == 1

    with pytest.raises(ConfigurationError, match="provider="):
        df.llm.batch("Classify: {review}", model="my-gateway-model", client=anthropic_client)
    with pytest.raises(ConfigurationError, match="anthropic client"):
        df.llm.batch("Classify: {review}", model=MODEL, provider="openai", client=anthropic_client)


def test_claude_model_routed_to_openai_with_provider_override(emulator, openai_client) -> None:
    df = pd.DataFrame({"review": ["x"]})
    out = df.llm.batch("Classify: {review}", model=MODEL, provider="openai", client=openai_client)
    assert out.loc[0, "output"] == answer("Classify: x")
    assert batchframe.jobs()["provider"].tolist() == ["openai"]
    assert emulator.stats()["uploads"] == 1  # the OpenAI protocol (file upload) was used


def test_a_client_instance_is_honoured(emulator: Emulator, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    client = emulator.anthropic_client(max_retries=0, default_headers={"x-team": "labelling"})
    df = pd.DataFrame({"review": ["x"]})
    out = df.llm.batch("Classify: {review}", model=MODEL, client=client)
    assert out.loc[0, "output"] == answer("Classify: x")
    assert emulator.stats()["batches_created"] == 1


def test_without_a_client_the_sdk_environment_is_used(emulator: Emulator, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "emulator-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.anthropic_base_url)
    df = pd.DataFrame({"review": ["x"]})
    out = df.llm.batch("Classify: {review}", model=MODEL)
    assert out.loc[0, "output"] == answer("Classify: x")
    assert emulator.stats()["batches_created"] == 1


def test_missing_key_is_a_configuration_error(emulator: Emulator, monkeypatch, tmp_path) -> None:
    for name in ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CONFIG_DIR", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))  # no SDK profile credentials
    df = pd.DataFrame({"review": ["x"]})
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        df.llm.batch("Classify: {review}", model=MODEL)
    # A dry run needs no key and sends nothing.
    est = df.llm.batch("Classify: {review}", model=MODEL, dry_run=True)
    assert est.requests == 1
    assert emulator.stats()["http_calls"] == {}


# -- SDK errors -----------------------------------------------------------------------------


def test_rejected_key_is_an_authentication_error_and_the_job_resumes(
    emulator, anthropic_client
) -> None:
    emulator.set_faults(
        FaultPlan(http_errors=[{"method": "POST", "path": "/v1/messages/batches", "status": 401}])
    )
    df = pd.DataFrame({"review": ["x", "y"]})
    with pytest.raises(AuthenticationError) as info:
        df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client)
    err = info.value
    assert err.status_code == 401
    assert err.provider == "anthropic"
    assert err.request_id and err.request_id.startswith("req_")
    assert "ANTHROPIC_API_KEY" in str(err) and "rejected" in str(err)
    assert "emulator-key" not in str(err)
    assert emulator.stats()["batches_created"] == 0

    out = df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client)
    assert out["output_error"].isna().all()
    assert emulator.stats()["batches_created"] == 1
    assert len(batchframe.jobs()) == 1  # the same job, resumed


@pytest.mark.parametrize(
    "rule",
    [
        {"method": "POST", "path": "/v1/messages/batches", "status": 429, "times": 2},
        {"method": "POST", "path": "/v1/messages/batches", "status": 529, "times": 1},
        {"method": "GET", "path": "/v1/messages/batches/*", "status": 500, "times": 3},
        {"method": "GET", "path": "/v1/messages/batches/*/results", "status": 503, "times": 1},
    ],
    ids=["create-429", "create-529", "poll-500", "results-503"],
)
def test_transient_http_errors_are_waited_out(emulator, anthropic_client, rule) -> None:
    emulator.set_faults(FaultPlan(http_errors=[rule]))
    df = pd.DataFrame({"review": ["x", "y", "z"]})
    out = df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client)
    assert out["output_error"].isna().all()
    stats = emulator.stats()
    assert stats["http_errors_injected"] == rule["times"]
    assert stats["batches_created"] == 1
    assert stats["requests_submitted"] == 3


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (429, RateLimitError, "rate limited"),
        (500, ProviderUnavailableError, "run the same call again"),
        (400, ProviderRequestError, "HTTP 400"),
        (403, AuthenticationError, "ANTHROPIC_API_KEY"),
    ],
)
def test_persistent_http_errors_map_onto_batchframes_errors(
    emulator, anthropic_client, status, error, words
) -> None:
    rule = {"method": "POST", "path": "/v1/messages/batches", "status": status, "times": None}
    emulator.set_faults(FaultPlan(http_errors=[rule]))
    df = pd.DataFrame({"review": ["x"]})
    with pytest.raises(error) as info:
        df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client)
    assert words in str(info.value)
    assert info.value.status_code == status
    assert "refused to create the message batch" in str(info.value)
    assert emulator.stats()["batches_created"] == 0


def test_sdk_retries_on_the_users_client_are_kept(emulator: Emulator) -> None:
    client = emulator.anthropic_client(max_retries=2)
    emulator.set_faults(
        FaultPlan(http_errors=[{"method": "POST", "path": "/v1/messages/batches", "status": 500}])
    )
    df = pd.DataFrame({"review": ["x"]})
    out = df.llm.batch("Classify: {review}", model=MODEL, client=client)
    assert out["output_error"].isna().all()
    assert emulator.stats()["http_calls"]["POST /v1/messages/batches"] == 2


# -- decoding -------------------------------------------------------------------------------


def decode(path: Path) -> pd.DataFrame:
    return AnthropicProvider().decode([path]).to_pandas()


def test_decoding_every_result_type(tmp_path: Path) -> None:
    rows = decode(FIXTURES / "results_mixed.jsonl")
    by_key = rows[rows["key"] >= 0].set_index("key")

    ok = by_key.loc[[0, 1, 2, 3, 15]]
    assert (ok["fate"] == "ok").all()
    assert list(ok["text"]) == ["neutral", "negative", "negative", "positive", "Austin"]
    # Prompt tokens normalised to "all of them": uncached + cache reads + cache writes.
    assert by_key.loc[0, ["input_tokens", "cached_tokens", "cache_write_tokens"]].tolist() == [
        1512,
        0,
        1500,
    ]
    assert by_key.loc[1, ["input_tokens", "cached_tokens", "cache_write_tokens"]].tolist() == [
        1509,
        1500,
        0,
    ]
    assert by_key.loc[2, "reasoning_tokens"] == 110  # thinking text is not the answer
    assert by_key.loc[4, "finish_reason"] == "max_tokens"
    assert by_key.loc[5, "refusal"] == "the model declined to answer"
    assert json.loads(by_key.loc[6, "text"]) == {"label": "positive"}

    assert by_key.loc[7, "fate"] == "failed"
    assert by_key.loc[7, "error_code"] == "invalid_request_error"
    assert "64000" in by_key.loc[7, "error_message"]
    assert by_key.loc[10, "fate"] == "failed"
    assert "Unexpected role" in by_key.loc[10, "error_message"]
    for key, code in [(8, "api_error"), (9, "overloaded_error"), (11, "canceled"), (12, "expired")]:
        assert by_key.loc[key, "fate"] == "retry", key
        assert by_key.loc[key, "error_code"] == code
    assert by_key.loc[13, ["fate", "error_code"]].tolist() == ["retry", "unknown_result"]
    assert by_key.loc[14, ["fate", "error_code"]].tolist() == ["retry", "unreadable_line"]
    assert (rows["key"] == -1).sum() == 1  # the stray id is kept out of every row

    # Through the join: answers, the truncated and refused rows, errors, one per key.
    settled = settle(pa.Table.from_pandas(rows.assign(attempt=1), preserve_index=False), 16)
    assert settled.succeeded == 8


def test_message_batch_objects_map_onto_neutral_status() -> None:
    def status(name: str):  # type: ignore[no-untyped-def]
        data = json.loads((FIXTURES / name).read_text("utf-8"))
        return _status(MessageBatch.construct(**data))

    running = status("batch_in_progress.json")
    assert (running.outcome, running.total, running.output_refs) == ("running", 16, ())
    canceling = status("batch_canceling.json")
    assert (canceling.outcome, canceling.status) == ("running", "canceling")
    ended = status("batch_ended.json")
    assert (ended.outcome, ended.total, ended.succeeded, ended.failed) == ("ended", 15, 9, 6)
    assert ended.output_refs == ("results",)
    assert status("batch_ended_after_cancel.json").outcome == "cancelled"
    assert status("batch_ended_reserialized.json").outcome == "ended"  # {} is not a cancel


RECORDED_RESULTS = {
    "jlawjlaw__yardbonita-ai/batch_results.jsonl": ("ok", 20),
    "L3G5__impossible-bench/batch_output_a.jsonl": ("failed", 36),
    "StolenMoments__BatchBridge-api-v2/ClaudeBatchAdapterTest.errored_line_custom_id_23.jsonl": (
        "failed",
        1,
    ),
}


@pytest.mark.skipif(not RECORDED.is_dir(), reason="recorded provider files not available")
def test_recorded_anthropic_results_decode_to_sensible_fates(tmp_path: Path) -> None:
    for name, (fate, count) in RECORDED_RESULTS.items():
        rows = decode(RECORDED / name)
        assert len(rows) == count, name
        assert (rows["fate"] == fate).all(), (name, rows["fate"].value_counts())
        assert (rows["key"] == -1).all()  # their custom ids are not ours: never joined
        if fate == "ok":
            assert rows["text"].str.len().gt(0).all()
            assert rows["input_tokens"].gt(0).all() and rows["output_tokens"].gt(0).all()
        else:
            assert (rows["error_code"] == "invalid_request_error").all()
            assert rows["error_message"].str.len().gt(20).all()

    curator = RECORDED / "bespokelabsai__curator/extracted/anthropic"
    for path in sorted(curator.glob("*/*results*.jsonl")):
        rows = decode(path)
        assert len(rows) >= 2 and (rows["fate"] == "ok").all(), path
        assert rows["cached_tokens"].eq(0).all() and rows["cache_write_tokens"].eq(0).all()
        raw = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
        for row, line in zip(rows.itertuples(), raw):
            blocks = line["result"]["message"]["content"]
            assert row.text == "".join(b["text"] for b in blocks if b["type"] == "text")

    for path in sorted(curator.glob("*/*_v1_messages_batches*.json")):
        data = json.loads(path.read_text("utf-8"))
        if data.get("type") != "message_batch":
            continue  # the recorded HTTP 401 error body
        st = _status(MessageBatch.construct(**data))
        word = data["processing_status"]
        assert st.status == word
        assert st.outcome == ("ended" if word == "ended" else "running"), path
        assert bool(st.output_refs) == (word == "ended")
        assert st.total == sum(data["request_counts"].values())

    ellmer = json.loads(
        (
            RECORDED / "tidyverse__ellmer/tests/testthat/batch/state-capitals-anthropic.json"
        ).read_text()
    )
    assert _status(MessageBatch.construct(**ellmer["batch"])).outcome == "ended"
    lines = tmp_path / "ellmer.jsonl"
    lines.write_text("".join(json.dumps({"result": r}) + "\n" for r in ellmer["results"]))
    rows = decode(lines)
    assert rows["text"].tolist() == ["Des Moines", "Albany", "Sacramento", "Austin"]
    assert (rows["fate"] == "ok").all() and (rows["key"] == -1).all()

    # The request lines batchframe writes have the shape the live API accepted.
    recorded = json.loads(
        (curator / "basic_batch_completion/00_request_create_message_batch.json").read_text()
    )["requests"]
    dishes = pd.DataFrame({"dish": [r["params"]["messages"][0]["content"] for r in recorded]})
    model = recorded[0]["params"]["model"]
    path = dishes.llm.to_jsonl(tmp_path / "dishes.jsonl", "{dish}", model=model, max_tokens=8192)
    ours = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert [line["params"] for line in ours] == [r["params"] for r in recorded]
    assert all(CUSTOM_ID.match(line["custom_id"]) for line in ours)

    submission = json.loads(
        (RECORDED / "jlawjlaw__yardbonita-ai/claude_batch_submission.json").read_text()
    )
    st = _status(MessageBatch.construct(**submission))
    assert (st.outcome, st.total) == ("running", 20)


def test_results_are_streamed_to_disk_not_held_in_memory(
    emulator, anthropic_client, tmp_path
) -> None:
    """download() writes the stream to a file the decoder then reads line by line."""
    df = pd.DataFrame({"review": [f"item {i}" for i in range(5)]})
    df.llm.batch("Classify: {review}", model=MODEL, client=anthropic_client)
    batch_id = emulator.stats()["batch_ids"][0]
    provider = AnthropicProvider(anthropic_client)
    status = provider.retrieve(batch_id)
    folder = tmp_path / "downloads"
    folder.mkdir()
    paths = provider.download(status, folder)
    assert [p.name for p in paths] == [f"results-{batch_id}.jsonl"]
    assert sorted(folder.iterdir()) == paths  # no partial files left behind
    table = provider.decode(paths).to_pandas()
    assert sorted(table["key"]) == [0, 1, 2, 3, 4]
