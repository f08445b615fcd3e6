"""Anthropic Message Batches as the emulator speaks them, driven by the real anthropic SDK."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any, Literal

import anthropic
import jsonschema
import pytest
from emu_helpers import CLAUDE, PROCESSING, areq, arun
from pydantic import BaseModel

from batchframe.emulator import API_KEY, Emulator, FaultPlan

COUNT_NAMES = ("processing", "succeeded", "errored", "canceled", "expired")


def _counts(batch: Any) -> dict[str, int]:
    return {name: getattr(batch.request_counts, name) for name in COUNT_NAMES}


def _text(result: Any) -> str:
    assert result.result.type == "succeeded", result.result
    blocks = [b for b in result.result.message.content if b.type == "text"]
    assert len(blocks) == 1
    return str(blocks[0].text)


# -- lifecycle --------------------------------------------------------------------------------


def test_create_poll_and_results(emu: Emulator, ant: Any) -> None:
    requests = [areq(f"row_{i:02d}", f"review {i}", system="One word.") for i in range(20)]
    created = ant.messages.batches.create(requests=requests)
    assert created.type == "message_batch"
    assert created.id.startswith("msgbatch_")
    assert created.processing_status == "in_progress"
    assert _counts(created) == {
        "processing": 20,
        "succeeded": 0,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert created.results_url is None
    assert created.ended_at is None and created.cancel_initiated_at is None
    assert created.archived_at is None
    assert created.expires_at - created.created_at == timedelta(days=1)
    with pytest.raises(anthropic.AnthropicError, match="finished processing"):
        list(ant.messages.batches.results(created.id))  # the SDK refuses locally

    emu.advance(PROCESSING / 2)
    mid = ant.messages.batches.retrieve(created.id)
    assert mid.processing_status == "in_progress"
    assert _counts(mid) == _counts(created)  # no progress is visible while running
    assert mid.results_url is None

    emu.advance(PROCESSING)
    ended = ant.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended"
    assert ended.ended_at is not None
    assert ended.ended_at - ended.created_at == pytest.approx(
        timedelta(seconds=PROCESSING), abs=timedelta(seconds=1)
    )
    assert _counts(ended) == {
        "processing": 0,
        "succeeded": 20,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert ended.results_url == f"/v1/messages/batches/{created.id}/results"

    results = list(ant.messages.batches.results(created.id))
    order = [r.custom_id for r in results]
    assert sorted(order) == [f"row_{i:02d}" for i in range(20)]
    assert order != sorted(order), "results must not keep request order"
    for r in results:
        i = int(r.custom_id.split("_")[1])
        assert _text(r) == f"echo: review {i}"
        message = r.result.message
        assert message.type == "message" and message.role == "assistant"
        assert message.id.startswith("msg_")
        assert message.model == CLAUDE
        assert message.stop_reason == "end_turn"
        assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
        assert message.usage.service_tier == "batch"
        assert message.usage.cache_read_input_tokens == 0


def test_results_file_is_raw_jsonl(emu: Emulator, ant: Any) -> None:
    batch, _ = arun(emu, ant, [areq("a", "x"), areq("b", "EMU:400")])
    # results_url is relative: the SDK joins it to its base URL, and so does this test.
    request = urllib.request.Request(
        emu.anthropic_base_url + str(batch.results_url),
        headers={"authorization": f"Bearer {API_KEY}", "anthropic-version": "2023-06-01"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        text = resp.read().decode()
    lines = [json.loads(line) for line in text.splitlines()]
    assert {line["custom_id"] for line in lines} == {"a", "b"}
    for line in lines:
        assert set(line) == {"custom_id", "result"}
    errored = next(line for line in lines if line["custom_id"] == "b")["result"]
    assert errored["type"] == "errored"
    assert errored["error"]["type"] == "error"
    assert errored["error"]["error"]["type"] == "invalid_request_error"
    assert errored["error"]["request_id"].startswith("req_")


def test_mixed_models_in_one_batch(emu: Emulator, ant: Any) -> None:
    batch, results = arun(
        emu,
        ant,
        [areq("a", "x", model="claude-haiku-5-5"), areq("b", "y", model="claude-opus-5-5")],
    )
    assert _counts(batch)["succeeded"] == 2
    assert results["a"].result.message.model == "claude-haiku-5-5"
    assert results["b"].result.message.model == "claude-opus-5-5"


# -- triggers ---------------------------------------------------------------------------------


def test_permanent_error_trigger(emu: Emulator, ant: Any) -> None:
    batch, results = arun(emu, ant, [areq("bad", "x EMU:400"), areq("good", "fine")])
    assert _counts(batch) == {
        "processing": 0,
        "succeeded": 1,
        "errored": 1,
        "canceled": 0,
        "expired": 0,
    }
    bad = results["bad"].result
    assert bad.type == "errored"
    assert bad.error.error.type == "invalid_request_error"
    _, again = arun(emu, ant, [areq("bad", "x EMU:400")])
    assert again["bad"].result.type == "errored"


@pytest.mark.parametrize(
    ("trigger", "kind"),
    [("EMU:500", "api_error"), ("EMU:429", "rate_limit_error"), ("EMU:status0", "api_error")],
)
def test_retryable_triggers_error_once(emu: Emulator, ant: Any, trigger: str, kind: str) -> None:
    _, first = arun(emu, ant, [areq("x", f"go {trigger}")])
    assert first["x"].result.type == "errored"
    assert first["x"].result.error.error.type == kind
    _, second = arun(emu, ant, [areq("x", f"go {trigger}")])
    assert _text(second["x"]) == f"echo: go {trigger}"


def test_expire_trigger(emu: Emulator, ant: Any) -> None:
    batch, results = arun(emu, ant, [areq("late", "EMU:expire"), areq("ok", "fine")])
    assert _counts(batch) == {
        "processing": 0,
        "succeeded": 1,
        "errored": 0,
        "canceled": 0,
        "expired": 1,
    }
    assert results["late"].result.type == "expired"
    assert batch.processing_status == "ended"
    _, again = arun(emu, ant, [areq("late", "EMU:expire")])
    assert again["late"].result.type == "succeeded"


def test_refuse_empty_and_malformed_triggers(emu: Emulator, ant: Any) -> None:
    fmt = {"format": {"type": "json_schema", "schema": Review.model_json_schema()}}
    _, results = arun(
        emu,
        ant,
        [
            areq("refuse", "EMU:refuse"),
            areq("empty", "EMU:empty"),
            areq("bad_json", "EMU:malformed", output_config=fmt),
            areq("good_json", "fine", output_config=fmt),
        ],
    )
    refusal = results["refuse"].result.message
    assert refusal.stop_reason == "refusal"
    assert not [b for b in refusal.content if b.type == "text" and b.text]
    assert _text(results["empty"]) == ""
    with pytest.raises(ValueError):
        json.loads(_text(results["bad_json"]))
    Review.model_validate_json(_text(results["good_json"]))


# -- structured output -------------------------------------------------------------------------


class Review(BaseModel):
    label: Literal["positive", "negative", "neutral"]
    stars: int
    summary: str
    keywords: list[str]


def test_output_config_json_schema_conforms(emu: Emulator, ant: Any) -> None:
    schema = Review.model_json_schema()
    requests = [
        areq(
            f"r{i}",
            f"review {i}",
            output_config={"format": {"type": "json_schema", "schema": schema}},
        )
        for i in range(12)
    ]
    _, results = arun(emu, ant, requests)
    labels = set()
    for r in results.values():
        value = json.loads(_text(r))
        jsonschema.validate(value, schema)
        labels.add(value["label"])
    assert len(labels) > 1


def test_forced_tool_use_conforms(emu: Emulator, ant: Any) -> None:
    schema = Review.model_json_schema()
    tools = [{"name": "record", "description": "Record it.", "input_schema": schema}]
    _, results = arun(
        emu,
        ant,
        [
            areq("named", "a", tools=tools, tool_choice={"type": "tool", "name": "record"}),
            areq("any", "b", tools=tools, tool_choice={"type": "any"}),
        ],
    )
    for key in ("named", "any"):
        message = results[key].result.message
        assert message.stop_reason == "tool_use"
        (block,) = message.content
        assert block.type == "tool_use" and block.name == "record"
        assert block.id.startswith("toolu_")
        jsonschema.validate(block.input, schema)


# -- validation at create ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requests", "needle"),
    [
        ([], "requests"),
        ([areq("has space", "x")], "custom_id"),
        ([areq("a" * 65, "x")], "custom_id"),
        ([areq("dup", "x"), areq("dup", "y")], "duplicate"),
        ([areq("a", "x", max_tokens=0)], "max_tokens"),
        ([{"custom_id": "a", "params": {"max_tokens": 5, "messages": []}}], "model"),
        ([{"custom_id": "a"}], "params"),
    ],
)
def test_create_rejects_invalid_requests(ant: Any, requests: list[Any], needle: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        ant.messages.batches.create(requests=requests)
    assert info.value.status_code == 400
    body = info.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert needle in body["error"]["message"]
    assert body["request_id"] == info.value.request_id


def test_custom_id_alphabet_accepts_the_whole_range(emu: Emulator, ant: Any) -> None:
    ids = ["A-z_0-9", "x" * 64, "_", "-"]
    _, results = arun(emu, ant, [areq(i, i) for i in ids])
    assert set(results) == set(ids)


def test_request_count_and_size_limits(emu: Emulator, ant: Any) -> None:
    emu.set_faults(FaultPlan(anthropic_max_requests=2, anthropic_max_bytes=4000))
    with pytest.raises(anthropic.BadRequestError, match="at most 2"):
        ant.messages.batches.create(requests=[areq(str(i), "x") for i in range(3)])
    with pytest.raises(anthropic.APIStatusError) as info:
        ant.messages.batches.create(requests=[areq("a", "x" * 5000)])
    assert info.value.status_code == 413
    assert ant.messages.batches.create(requests=[areq("a", "x"), areq("b", "y")]).id


def test_sampling_parameters_fail_the_row_under_the_new_version(emu: Emulator, ant: Any) -> None:
    _, results = arun(emu, ant, [areq("t", "x", temperature=0.0), areq("ok", "y")])
    assert results["t"].result.type == "errored"
    assert "temperature" in results["t"].result.error.error.message
    assert results["ok"].result.type == "succeeded"
    old = emu.anthropic_client(max_retries=0, default_headers={"anthropic-version": "2023-06-01"})
    _, results = arun(emu, old, [areq("t", "x", top_p=0.5)])
    assert results["t"].result.type == "succeeded"


# -- cancel, delete, archive, expiry ----------------------------------------------------------


def test_cancel_then_ended_with_canceled_results(emu: Emulator, ant: Any) -> None:
    batch = ant.messages.batches.create(requests=[areq(f"r{i}", f"t{i}") for i in range(10)])
    emu.advance(PROCESSING / 2)
    canceling = ant.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    assert canceling.results_url is None
    assert _counts(canceling)["processing"] == 10
    assert ant.messages.batches.cancel(batch.id).processing_status == "canceling"
    emu.advance(PROCESSING)
    ended = ant.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    counts = _counts(ended)
    assert counts["processing"] == 0 and counts["expired"] == 0 and counts["errored"] == 0
    assert 0 < counts["succeeded"] < 10
    assert counts["succeeded"] + counts["canceled"] == 10
    kinds = [r.result.type for r in ant.messages.batches.results(batch.id)]
    assert kinds.count("canceled") == counts["canceled"]
    assert kinds.count("succeeded") == counts["succeeded"]
    with pytest.raises(anthropic.BadRequestError):
        ant.messages.batches.cancel(batch.id)


def test_delete_only_after_the_batch_ended(emu: Emulator, ant: Any) -> None:
    batch = ant.messages.batches.create(requests=[areq("a", "x")])
    with pytest.raises(anthropic.BadRequestError):
        ant.messages.batches.delete(batch.id)
    emu.advance(PROCESSING + 1)
    deleted = ant.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError) as info:
        ant.messages.batches.retrieve(batch.id)
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert batch.id not in [b.id for b in ant.messages.batches.list()]


def test_results_are_archived_after_29_days(emu: Emulator, ant: Any) -> None:
    batch, _ = arun(emu, ant, [areq("a", "x")])
    emu.advance(29 * 86_400)
    archived = ant.messages.batches.retrieve(batch.id)
    assert archived.archived_at is not None
    with pytest.raises(anthropic.NotFoundError):
        list(ant.messages.batches.results(batch.id))


def test_a_stalled_batch_expires_after_24_hours(emu: Emulator, ant: Any) -> None:
    emu.set_faults(FaultPlan(stall_batches=1))
    batch = ant.messages.batches.create(requests=[areq("a", "x"), areq("b", "y")])
    emu.advance(PROCESSING * 50)
    assert ant.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    emu.advance(86_400)
    ended = ant.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.ended_at == ended.expires_at
    assert _counts(ended)["expired"] == 2
    assert {r.result.type for r in ant.messages.batches.results(batch.id)} == {"expired"}


# -- list, count tokens, headers --------------------------------------------------------------


def test_list_pages_newest_first(ant: Any) -> None:
    made = [ant.messages.batches.create(requests=[areq("a", str(i))]).id for i in range(5)]
    page = ant.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == made[::-1][:2]
    assert page.has_more is True
    assert page.last_id == made[3] and page.first_id == made[4]
    assert [b.id for b in ant.messages.batches.list(limit=2)] == made[::-1]
    after = ant.messages.batches.list(limit=10, after_id=made[2])
    assert [b.id for b in after.data] == [made[1], made[0]]
    assert after.has_more is False
    before = ant.messages.batches.list(limit=1, before_id=made[2])
    assert [b.id for b in before.data] == [made[3]]
    assert before.has_more is True  # made[4] is newer still
    assert ant.messages.batches.list(limit=5, before_id=made[2]).has_more is False
    with pytest.raises(anthropic.BadRequestError):
        ant.messages.batches.list(limit=1001)


def test_count_tokens_is_deterministic(emu: Emulator, ant: Any) -> None:
    def count(text: str, system: str | None = None) -> int:
        kwargs: dict[str, Any] = {"system": system} if system else {}
        result = ant.messages.count_tokens(
            model=CLAUDE, messages=[{"role": "user", "content": text}], **kwargs
        )
        return int(result.input_tokens)

    short = count("hello world")
    assert short > 0
    assert count("hello world") == short
    assert count("hello world " * 20) > short
    assert count("hello world", system="You are terse.") > short
    assert emu.stats()["token_count_calls"] == 4


def test_realtime_message(emu: Emulator, ant: Any) -> None:
    message = ant.messages.create(
        model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "ping"}]
    )
    assert message.content[0].text == "echo: ping"
    assert message.usage.service_tier == "standard"
    with pytest.raises(anthropic.InternalServerError):
        ant.messages.create(
            model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "EMU:500"}]
        )
    assert emu.stats()["realtime_calls"] == 2


def test_headers_auth_and_version(emu: Emulator, ant: Any) -> None:
    raw = ant.messages.batches.with_raw_response.list()
    assert raw.headers["request-id"].startswith("req_")
    assert raw.http_request.headers["authorization"] == f"Bearer {API_KEY}"
    assert raw.http_request.headers["anthropic-version"] == "2026-10-21"

    def call(headers: dict[str, str]) -> tuple[int, Any]:
        request = urllib.request.Request(emu.url + "/v1/messages/batches", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    status, body = call({"x-api-key": "anything", "anthropic-version": "2023-06-01"})
    assert status == 200 and "data" in body
    status, body = call({"anthropic-version": "2023-06-01"})
    assert status == 401
    assert body["error"]["type"] == "authentication_error"
    status, body = call({"x-api-key": "anything"})
    assert status == 400
    assert "anthropic-version" in body["error"]["message"]
