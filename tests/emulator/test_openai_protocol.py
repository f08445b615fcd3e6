"""The OpenAI Batch API as the emulator speaks it, driven by the real openai SDK over HTTP."""

from __future__ import annotations

import json
from typing import Any, Literal

import jsonschema
import openai
import pytest
from emu_helpers import (
    CHAT,
    EMBEDDINGS,
    GPT,
    PROCESSING,
    RESPONSES,
    by_id,
    chat_line,
    file_lines,
    finish,
    jsonl,
    outcome,
    read_jsonl,
    run,
    submit,
    upload,
)
from pydantic import BaseModel

from batchframe.emulator import Emulator, FaultPlan

DAY = 86_400

# -- files -------------------------------------------------------------------------------


def test_upload_answers_a_file_object_and_keeps_the_exact_bytes(oai: Any) -> None:
    data = b'{"a": "caf\xc3\xa9 \\u2603"}\r\n{"b": 2}\n\n{"c": "line\\r\\nbreak"}'
    f = upload(oai, data, "weird name.jsonl")
    assert f.object == "file"
    assert f.id.startswith("file-")
    assert f.purpose == "batch"
    assert f.status == "processed"
    assert f.filename == "weird name.jsonl"
    assert f.bytes == len(data)
    assert f.expires_at == f.created_at + 30 * DAY  # batch inputs expire after 30 days
    again = oai.files.retrieve(f.id)
    assert again.model_dump() == f.model_dump()
    assert oai.files.content(f.id).content == data


def test_upload_of_binary_bytes_round_trips(oai: Any) -> None:
    data = bytes(range(256)) * 4 + b"\r\n--boundary\r\n"
    f = oai.files.create(file=("blob.jsonl", data, "application/octet-stream"), purpose="batch")
    assert f.bytes == len(data)
    assert oai.files.content(f.id).content == data


def test_batch_upload_must_be_jsonl(oai: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        upload(oai, b"{}\n", "input.csv")
    assert info.value.status_code == 400
    body = info.value.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}
    assert body["type"] == "invalid_request_error"
    assert ".jsonl" in body["message"]
    assert info.value.request_id and info.value.request_id.startswith("req_")


def test_other_purposes_accept_any_name_and_bad_purposes_are_refused(oai: Any) -> None:
    f = oai.files.create(file=("notes.txt", b"hello"), purpose="user_data")
    assert f.purpose == "user_data"
    assert f.expires_at is None
    with pytest.raises(openai.BadRequestError):
        oai.files.create(file=("x.jsonl", b"{}"), purpose="nonsense")


def test_upload_expires_after_sets_expiry_and_the_file_vanishes(emu: Emulator, oai: Any) -> None:
    f = oai.files.create(
        file=("in.jsonl", b"{}\n"),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert f.expires_at == f.created_at + 3600
    emu.advance(3601)
    with pytest.raises(openai.NotFoundError):
        oai.files.retrieve(f.id)
    with pytest.raises(openai.BadRequestError):
        oai.files.create(
            file=("in.jsonl", b"{}\n"),
            purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 60},
        )


def test_files_list_pages_newest_first_and_filters_by_purpose(oai: Any) -> None:
    made = [upload(oai, b"{}\n", f"f{i}.jsonl").id for i in range(5)]
    oai.files.create(file=("other.txt", b"x"), purpose="user_data")
    page = oai.files.list(purpose="batch", limit=2)
    assert [f.id for f in page.data] == made[::-1][:2]
    assert page.has_more is True
    assert [f.id for f in oai.files.list(purpose="batch", limit=2)] == made[::-1]
    ascending = oai.files.list(purpose="batch", order="asc", limit=3)
    assert [f.id for f in ascending] == made
    assert len(list(oai.files.list())) == 6


def test_output_files_are_listed_even_before_the_batch_is_polled(emu: Emulator, oai: Any) -> None:
    batch = submit(oai, [chat_line("a", "x"), chat_line("b", "EMU:400")])
    emu.advance(PROCESSING + 1)
    listed = {f.filename: f for f in oai.files.list(purpose="batch_output")}
    assert len(listed) == 2
    done = oai.batches.retrieve(batch.id)
    assert {f.id for f in listed.values()} == {done.output_file_id, done.error_file_id}


def test_control_calls_are_quick(oai: Any) -> None:
    """No Nagle/delayed-ACK stall: a poll costs about a millisecond, not 40."""
    import time

    oai.batches.list()
    start = time.perf_counter()
    for _ in range(100):
        oai.batches.list()
    assert time.perf_counter() - start < 3.0  # with the 40 ms stall: 4 s or more


def test_delete_file(oai: Any) -> None:
    f = upload(oai, b"{}\n")
    deleted = oai.files.delete(f.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (f.id, "file", True)
    with pytest.raises(openai.NotFoundError) as info:
        oai.files.content(f.id)
    assert info.value.status_code == 404


# -- the status sequence --------------------------------------------------------------------


def test_status_sequence_timestamps_and_counts(emu: Emulator, oai: Any) -> None:
    lines = [chat_line(f"r{i}", f"review {i}") for i in range(10)]
    created = submit(oai, lines, metadata={"job": "j1"})
    assert created.object == "batch"
    assert created.id.startswith("batch_")
    assert created.status == "validating"
    assert created.endpoint == CHAT
    assert created.completion_window == "24h"
    assert created.metadata == {"job": "j1"}
    assert created.expires_at == created.created_at + DAY
    assert created.request_counts is not None
    assert created.request_counts.total == 0
    for name in ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at"):
        assert getattr(created, name) is None, name
    assert created.output_file_id is None and created.error_file_id is None

    emu.advance(5)
    b = oai.batches.retrieve(created.id)
    assert b.status == "validating"
    assert b.request_counts.total == 0

    emu.advance(45)  # t = 50: half-way through the run
    b = oai.batches.retrieve(created.id)
    assert b.status == "in_progress"
    assert b.in_progress_at is not None
    assert created.created_at <= b.in_progress_at <= created.created_at + 11
    assert b.model == GPT
    assert b.request_counts.total == 10
    assert 0 < b.request_counts.completed < 10
    assert b.request_counts.failed == 0
    assert b.output_file_id is None and b.finalizing_at is None

    emu.advance(45)  # t = 95
    b = oai.batches.retrieve(created.id)
    assert b.status == "finalizing"
    assert b.finalizing_at is not None and b.completed_at is None
    assert b.request_counts.completed == 10
    assert b.output_file_id is None

    emu.advance(10)  # t = 105
    b = oai.batches.retrieve(created.id)
    assert b.status == "completed"
    assert b.in_progress_at <= b.finalizing_at <= b.completed_at
    assert b.completed_at - created.created_at == pytest.approx(PROCESSING, abs=1)
    assert b.request_counts.model_dump() == {"total": 10, "completed": 10, "failed": 0}
    assert b.output_file_id is not None
    assert b.error_file_id is None  # no failures: no error file
    assert b.errors is None
    out = oai.files.retrieve(b.output_file_id)
    assert out.purpose == "batch_output"
    assert out.expires_at == out.created_at + 30 * DAY


def test_zero_processing_seconds_completes_at_once() -> None:
    with Emulator(processing_seconds=0) as emu:
        client = emu.openai_client(max_retries=0)
        batch = submit(client, [chat_line("a", "x")])
        assert batch.status == "validating"
        assert client.batches.retrieve(batch.id).status == "completed"


def test_output_file_lines_usage_and_shuffled_order(emu: Emulator, oai: Any) -> None:
    lines = [chat_line(f"row-{i:02d}", f"text number {i}", system="One word.") for i in range(30)]
    batch, out, err = outcome(emu, oai, lines)
    assert not err
    raw = file_lines(oai, batch.output_file_id)
    order = [line["custom_id"] for line in raw]
    assert sorted(order) == sorted(line["custom_id"] for line in lines)
    assert order != [line["custom_id"] for line in lines], "output must not keep input order"
    total_in = total_out = 0
    for i in range(30):
        line = out[f"row-{i:02d}"]
        assert set(line) == {"id", "custom_id", "response", "error"}
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        response = line["response"]
        assert response["status_code"] == 200
        assert response["request_id"]
        body = response["body"]
        assert body["object"] == "chat.completion"
        assert body["model"] == GPT
        assert body["id"].startswith("chatcmpl-")
        choice = body["choices"][0]
        assert choice["index"] == 0
        assert choice["finish_reason"] == "stop"
        assert choice["message"]["role"] == "assistant"
        assert choice["message"]["content"] == f"echo: text number {i}"
        assert choice["message"]["refusal"] is None
        usage = body["usage"]
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert usage["prompt_tokens_details"]["cached_tokens"] == 0
        assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
        total_in += usage["prompt_tokens"]
        total_out += usage["completion_tokens"]
        # The SDK's own model parses the body.
        parsed = openai.types.chat.ChatCompletion.model_validate(body)
        assert parsed.choices[0].message.content == f"echo: text number {i}"
    assert batch.usage is not None
    assert batch.usage.input_tokens == total_in
    assert batch.usage.output_tokens == total_out
    assert batch.usage.total_tokens == total_in + total_out


def test_prompt_tokens_follow_the_chat_cookbook_rule(emu: Emulator, oai: Any) -> None:
    """One system + one user message costs content + 11 (3 per message, 3, one per role)."""
    from batchframe.emulator import tokens

    _, out, _ = outcome(emu, oai, [chat_line("a", "Great product!", system="One word.")])
    usage = out["a"]["response"]["body"]["usage"]
    content = tokens.count("Great product!") + tokens.count("One word.")
    assert usage["prompt_tokens"] == content + 11
    assert tokens.count("hello world") == 2  # o200k_base: [24912, 2375]


def test_responses_endpoint_bodies(emu: Emulator, oai: Any) -> None:
    lines = [
        {
            "custom_id": "a",
            "method": "POST",
            "url": RESPONSES,
            "body": {"model": GPT, "input": "hello there", "instructions": "Be brief."},
        },
        {
            "custom_id": "b",
            "method": "POST",
            "url": RESPONSES,
            "body": {
                "model": GPT,
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
                "max_output_tokens": 2,
            },
        },
    ]
    batch, out, err = outcome(emu, oai, lines, endpoint=RESPONSES)
    assert batch.status == "completed" and not err
    body = out["a"]["response"]["body"]
    assert body["object"] == "response"
    assert body["status"] == "completed"
    assert body["id"].startswith("resp_")
    parsed = openai.types.responses.Response.model_validate(body)
    assert parsed.output_text == "echo: hello there"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    cut = out["b"]["response"]["body"]
    assert cut["status"] == "incomplete"
    assert cut["incomplete_details"] == {"reason": "max_output_tokens"}
    assert cut["usage"]["output_tokens"] == 2
    assert out["b"]["response"]["status_code"] == 200


def test_embeddings_batch(emu: Emulator, oai: Any) -> None:
    lines = [
        {
            "custom_id": str(i),
            "method": "POST",
            "url": EMBEDDINGS,
            "body": {"model": "text-embedding-3-small", "input": text, "dimensions": 8},
        }
        for i, text in enumerate(["alpha", "beta", "alpha"])
    ]
    _, out, _ = outcome(emu, oai, lines, endpoint=EMBEDDINGS)
    vectors = []
    for i in range(3):
        body = out[str(i)]["response"]["body"]
        assert body["object"] == "list"
        assert body["data"][0]["object"] == "embedding"
        assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
        vector = body["data"][0]["embedding"]
        assert len(vector) == 8
        assert sum(x * x for x in vector) == pytest.approx(1.0, abs=1e-6)
        vectors.append(vector)
    assert vectors[0] == vectors[2] != vectors[1]


def test_max_completion_tokens_truncates_with_finish_reason_length(emu: Emulator, oai: Any) -> None:
    text = "a fairly long sentence that certainly needs more than three tokens to echo"
    _, out, _ = outcome(emu, oai, [chat_line("a", text, max_completion_tokens=3)])
    body = out["a"]["response"]["body"]
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3
    assert ("echo: " + text).startswith(body["choices"][0]["message"]["content"])


def test_reasoning_models_reject_max_tokens_and_temperature_per_row(
    emu: Emulator, oai: Any
) -> None:
    lines = [
        chat_line("max", "x", model="gpt-5.4-mini", max_tokens=5),
        chat_line("temp", "y", model="gpt-5.4-mini", temperature=0.2),
        chat_line("ok", "z", model="gpt-5.4-mini", max_completion_tokens=50, temperature=1),
    ]
    batch, out, err = outcome(emu, oai, lines)
    assert batch.status == "completed"
    assert set(out) == {"ok"}
    assert err["max"]["response"]["status_code"] == 400
    assert err["max"]["response"]["body"]["error"]["param"] == "max_tokens"
    assert err["temp"]["response"]["body"]["error"]["param"] == "temperature"
    assert batch.request_counts.model_dump() == {"total": 3, "completed": 1, "failed": 2}


# -- validation -------------------------------------------------------------------------------


def _line(custom_id: str = "a", **changes: Any) -> dict[str, Any]:
    line = chat_line(custom_id, "hello")
    line.update(changes)
    return line


VALIDATION_CASES: dict[str, tuple[bytes, str, int | None]] = {
    "bad json": (jsonl([_line("a")]) + b"{not json\n", "invalid_json_line", 2),
    "not an object": (b"[1, 2]\n", "invalid_json_line", 1),
    "duplicate custom_id": (jsonl([_line("a"), _line("b"), _line("a")]), "duplicate_custom_id", 3),
    "url mismatch": (jsonl([_line("a"), _line("b", url=RESPONSES)]), "url_mismatch", 2),
    "model mismatch": (
        jsonl([_line("a"), chat_line("b", "x", model="gpt-4o")]),
        "model_mismatch",
        2,
    ),
    "empty file": (b"\n\n", "empty_file", None),
    "no custom_id": (jsonl([{"method": "POST", "url": CHAT, "body": {"model": GPT}}]), "", 1),
    "method": (jsonl([_line("a", method="GET")]), "invalid_method", 1),
}


@pytest.mark.parametrize("case", sorted(VALIDATION_CASES))
def test_invalid_files_create_a_batch_that_fails(emu: Emulator, oai: Any, case: str) -> None:
    data, code, line = VALIDATION_CASES[case]
    f = upload(oai, data)  # malformed content is accepted at upload
    created = oai.batches.create(input_file_id=f.id, endpoint=CHAT, completion_window="24h")
    assert created.status == "validating"  # ... and at create
    b = finish(emu, oai, created.id)
    assert b.status == "failed"
    assert b.failed_at is not None and b.in_progress_at is None and b.completed_at is None
    assert b.output_file_id is None and b.error_file_id is None
    assert b.request_counts.total == 0
    assert b.errors is not None and b.errors.object == "list"
    errors = b.errors.data
    assert errors, "a failed batch explains itself"
    if code:
        assert errors[0].code == code
    else:
        assert errors[0].code
    assert errors[0].line == line
    assert errors[0].message


def test_validation_reports_every_bad_line(emu: Emulator, oai: Any) -> None:
    data = jsonl([_line("a"), _line("a"), _line("b", url=RESPONSES)]) + b"oops\n"
    f = upload(oai, data)
    b = finish(
        emu, oai, oai.batches.create(input_file_id=f.id, endpoint=CHAT, completion_window="24h").id
    )
    codes = [(e.code, e.line) for e in b.errors.data]
    assert codes == [("duplicate_custom_id", 2), ("url_mismatch", 3), ("invalid_json_line", 4)]


def test_request_and_size_limits_fail_the_batch(emu: Emulator, oai: Any) -> None:
    emu.set_faults(FaultPlan(max_requests_per_file=3, max_file_bytes=10_000))
    over = run(emu, oai, [_line(str(i)) for i in range(4)])
    assert over.status == "failed"
    assert [e.code for e in over.errors.data] == ["too_many_tasks"]
    at_limit = run(emu, oai, [_line(str(i)) for i in range(3)])
    assert at_limit.status == "completed"
    big = run(emu, oai, [chat_line("big", "x" * 10_000)])
    assert big.status == "failed"
    assert [e.code for e in big.errors.data] == ["file_too_large"]


def test_default_limits_are_the_documented_ones() -> None:
    plan = FaultPlan()
    assert plan.max_requests_per_file == 50_000
    assert plan.max_file_bytes == 200 * 1024 * 1024
    assert plan.anthropic_max_requests == 100_000
    assert plan.anthropic_max_bytes == 256 * 1024 * 1024


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"endpoint": "/v1/nope"}, "endpoint"),
        ({"completion_window": "48h"}, "completion_window"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata"),
        ({"output_expires_after": {"anchor": "created_at", "seconds": 60}}, "output_expires_after"),
    ],
)
def test_create_rejects_bad_arguments(oai: Any, change: dict[str, Any], param: str) -> None:
    f = upload(oai, jsonl([_line()]))
    args: dict[str, Any] = {"input_file_id": f.id, "endpoint": CHAT, "completion_window": "24h"}
    args.update(change)
    with pytest.raises(openai.BadRequestError) as info:
        oai.batches.create(**args)
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == param


def test_create_with_unknown_or_wrong_purpose_file(oai: Any) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.batches.create(input_file_id="file-nope", endpoint=CHAT, completion_window="24h")
    other = oai.files.create(file=("x.jsonl", jsonl([_line()])), purpose="user_data")
    with pytest.raises(openai.BadRequestError):
        oai.batches.create(input_file_id=other.id, endpoint=CHAT, completion_window="24h")


def test_output_expires_after_sets_output_file_expiry(emu: Emulator, oai: Any) -> None:
    b = run(
        emu,
        oai,
        [_line()],
        output_expires_after={"anchor": "created_at", "seconds": 7200},
    )
    out = oai.files.retrieve(b.output_file_id)
    assert out.expires_at == out.created_at + 7200
    emu.advance(7200)
    with pytest.raises(openai.NotFoundError):
        oai.files.content(b.output_file_id)


# -- per-row outcomes and triggers ------------------------------------------------------------


def test_trigger_400_is_a_permanent_row_error(emu: Emulator, oai: Any) -> None:
    lines = [chat_line("bad", "please fail EMU:400"), chat_line("good", "fine")]
    batch, out, err = outcome(emu, oai, lines)
    assert batch.status == "completed"
    assert set(out) == {"good"} and set(err) == {"bad"}
    line = err["bad"]
    assert line["error"] is None
    assert line["response"]["status_code"] == 400
    error = line["response"]["body"]["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert batch.request_counts.model_dump() == {"total": 2, "completed": 1, "failed": 1}
    again = outcome(emu, oai, [chat_line("bad", "please fail EMU:400")])
    assert again[2]["bad"]["response"]["status_code"] == 400  # still failing


@pytest.mark.parametrize(
    ("trigger", "status", "kind"),
    [("EMU:500", 500, "server_error"), ("EMU:429", 429, "requests")],
)
def test_retryable_triggers_fail_the_first_attempt_only(
    emu: Emulator, oai: Any, trigger: str, status: int, kind: str
) -> None:
    line = chat_line("x", f"try {trigger}")
    _, out, err = outcome(emu, oai, [line, chat_line("y", "fine")])
    assert set(out) == {"y"}
    assert err["x"]["response"]["status_code"] == status
    assert err["x"]["response"]["body"]["error"]["type"] == kind
    _, out, err = outcome(emu, oai, [line])
    assert not err
    assert out["x"]["response"]["status_code"] == 200
    assert (
        out["x"]["response"]["body"]["choices"][0]["message"]["content"] == f"echo: try {trigger}"
    )


def test_status0_trigger(emu: Emulator, oai: Any) -> None:
    line = chat_line("x", "EMU:status0")
    _, out, err = outcome(emu, oai, [line])
    assert not out
    assert err["x"]["response"]["status_code"] == 0
    assert err["x"]["error"] is None
    _, out, err = outcome(emu, oai, [line])
    assert out["x"]["response"]["status_code"] == 200 and not err


def test_expire_trigger_expires_the_batch_part_way(emu: Emulator, oai: Any) -> None:
    lines = [chat_line("late", "EMU:expire")] + [chat_line(f"r{i}", f"t{i}") for i in range(5)]
    batch = submit(oai, lines)
    emu.advance(50)
    assert oai.batches.retrieve(batch.id).status == "in_progress"
    b = finish(emu, oai, batch.id)
    assert b.status == "expired"
    assert b.expired_at is not None and b.completed_at is None
    out = by_id(file_lines(oai, b.output_file_id))
    err = by_id(file_lines(oai, b.error_file_id))
    assert set(out) == {f"r{i}" for i in range(5)}
    assert err["late"]["response"] is None
    assert err["late"]["error"]["code"] == "batch_expired"
    assert err["late"]["error"]["message"]
    _, out, err = outcome(emu, oai, [chat_line("late", "EMU:expire")])
    assert set(out) == {"late"} and not err  # the retry runs


def test_refusal_trigger(emu: Emulator, oai: Any) -> None:
    _, out, _ = outcome(emu, oai, [chat_line("x", "EMU:refuse me")])
    message = out["x"]["response"]["body"]["choices"][0]["message"]
    assert message["content"] is None
    assert isinstance(message["refusal"], str) and message["refusal"]
    assert out["x"]["response"]["status_code"] == 200


def test_empty_trigger(emu: Emulator, oai: Any) -> None:
    _, out, _ = outcome(emu, oai, [chat_line("x", "EMU:empty")])
    body = out["x"]["response"]["body"]
    assert body["choices"][0]["message"]["content"] == ""
    assert body["usage"]["completion_tokens"] == 0


def test_malformed_trigger_breaks_structured_output(emu: Emulator, oai: Any) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "s", "strict": True, "schema": Sentiment.model_json_schema()},
    }
    lines = [
        chat_line("bad", "EMU:malformed", response_format=fmt),
        chat_line("good", "fine", response_format=fmt),
    ]
    _, out, _ = outcome(emu, oai, lines)
    bad = out["bad"]["response"]["body"]["choices"][0]["message"]["content"]
    with pytest.raises(ValueError):
        json.loads(bad)
    Sentiment.model_validate_json(
        out["good"]["response"]["body"]["choices"][0]["message"]["content"]
    )


def test_a_batch_where_every_row_fails_completes_with_only_an_error_file(
    emu: Emulator, oai: Any
) -> None:
    batch, out, err = outcome(emu, oai, [chat_line(str(i), f"EMU:400 {i}") for i in range(3)])
    assert batch.status == "completed"
    assert batch.output_file_id is None
    assert batch.error_file_id is not None
    assert len(err) == 3 and not out
    assert batch.request_counts.model_dump() == {"total": 3, "completed": 0, "failed": 3}


def test_triggers_are_read_from_the_last_user_message_only(emu: Emulator, oai: Any) -> None:
    line = chat_line("x", "harmless", system="EMU:400")
    line["body"]["messages"].insert(1, {"role": "user", "content": "EMU:400 earlier turn"})
    line["body"]["messages"].insert(2, {"role": "assistant", "content": "ok"})
    _, out, err = outcome(emu, oai, [line])
    assert set(out) == {"x"} and not err


# -- structured output -----------------------------------------------------------------------


class Address(BaseModel):
    city: str
    zip_code: str


class Sentiment(BaseModel):
    label: Literal["positive", "negative", "neutral"]
    score: int
    confident: bool
    tags: list[str]
    address: Address
    note: str | None = None


def _chat_schema_line(custom_id: str, text: str, schema: dict[str, Any]) -> dict[str, Any]:
    return chat_line(
        custom_id,
        text,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "strict": True, "schema": schema},
        },
    )


def test_chat_json_schema_answers_conform(emu: Emulator, oai: Any) -> None:
    schema = Sentiment.model_json_schema()
    lines = [_chat_schema_line(f"r{i}", f"review {i}", schema) for i in range(12)]
    _, out, _ = outcome(emu, oai, lines)
    labels = set()
    for i in range(12):
        content = out[f"r{i}"]["response"]["body"]["choices"][0]["message"]["content"]
        value = json.loads(content)
        jsonschema.validate(value, schema)
        labels.add(Sentiment.model_validate(value).label)
    assert len(labels) > 1, "enum answers should vary with the text"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "enum": ["spam", "ham"]},
        {
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 5}},
            "required": ["n"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"type": "number"}, "minItems": 3},
                "when": {"type": "string", "format": "date"},
                "short": {"type": "string", "maxLength": 4},
                "pick": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
            },
            "required": ["items", "when", "short", "pick"],
        },
    ],
)
def test_more_schemas_conform(emu: Emulator, oai: Any, schema: dict[str, Any]) -> None:
    _, out, _ = outcome(emu, oai, [_chat_schema_line("a", "some text to use", schema)])
    value = json.loads(out["a"]["response"]["body"]["choices"][0]["message"]["content"])
    jsonschema.validate(value, schema)


def test_responses_json_schema_and_enum(emu: Emulator, oai: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["a", "b", "c"]}},
        "required": ["label"],
        "additionalProperties": False,
    }
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": RESPONSES,
            "body": {
                "model": GPT,
                "input": f"classify {i}",
                "text": {
                    "format": {"type": "json_schema", "name": "c", "schema": schema, "strict": True}
                },
            },
        }
        for i in range(6)
    ]
    _, out, _ = outcome(emu, oai, lines, endpoint=RESPONSES)
    for i in range(6):
        parsed = openai.types.responses.Response.model_validate(out[f"r{i}"]["response"]["body"])
        value = json.loads(parsed.output_text)
        jsonschema.validate(value, schema)
        assert value["label"] in {"a", "b", "c"}


def test_forced_tool_call_conforms(emu: Emulator, oai: Any) -> None:
    params = Sentiment.model_json_schema()
    line = chat_line(
        "t",
        "tool please",
        tools=[{"type": "function", "function": {"name": "record", "parameters": params}}],
        tool_choice={"type": "function", "function": {"name": "record"}},
    )
    _, out, _ = outcome(emu, oai, [line])
    message = out["t"]["response"]["body"]["choices"][0]["message"]
    assert message["content"] is None
    call = message["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "record"
    Sentiment.model_validate_json(call["function"]["arguments"])


def test_json_object_mode_and_required_tool_choice(emu: Emulator, oai: Any) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "only",
            "parameters": {"type": "object", "properties": {"k": {"type": "boolean"}}},
        },
    }
    lines = [
        chat_line("obj", "as json", response_format={"type": "json_object"}),
        chat_line("req", "call it", tools=[tool], tool_choice="required"),
        chat_line("auto", "maybe", tools=[tool]),  # not forced: a plain answer
    ]
    _, out, _ = outcome(emu, oai, lines)
    content = out["obj"]["response"]["body"]["choices"][0]["message"]["content"]
    assert json.loads(content) == {"answer": "echo: as json"}
    call = out["req"]["response"]["body"]["choices"][0]["message"]["tool_calls"][0]
    assert isinstance(json.loads(call["function"]["arguments"])["k"], bool)
    auto = out["auto"]["response"]["body"]["choices"][0]["message"]
    assert auto["content"] == "echo: maybe" and "tool_calls" not in auto


def test_embeddings_base64(emu: Emulator, oai: Any) -> None:
    import base64
    import struct

    body = {"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 4}
    line = {"custom_id": "e", "method": "POST", "url": EMBEDDINGS, "body": body}
    plain = outcome(emu, oai, [line], endpoint=EMBEDDINGS)[1]["e"]["response"]["body"]["data"]
    line64 = {**line, "body": {**body, "encoding_format": "base64"}}
    packed = outcome(emu, oai, [line64], endpoint=EMBEDDINGS)[1]["e"]["response"]["body"]["data"]
    assert [d["index"] for d in packed] == [0, 1]
    for p, q in zip(plain, packed):
        decoded = struct.unpack("<4f", base64.b64decode(q["embedding"]))
        assert decoded == pytest.approx(p["embedding"], abs=1e-6)


def test_unsupported_endpoints_fail_per_row(emu: Emulator, oai: Any) -> None:
    url = "/v1/images/generations"
    line = {"custom_id": "i", "method": "POST", "url": url, "body": {"model": "gpt-image-1"}}
    batch, out, err = outcome(emu, oai, [line], endpoint=url)
    assert batch.status == "completed" and not out
    assert err["i"]["response"]["body"]["error"]["code"] == "unsupported_endpoint"


# -- cancel ----------------------------------------------------------------------------------


def test_cancel_in_progress_keeps_finished_rows(emu: Emulator, oai: Any) -> None:
    lines = [chat_line(f"r{i}", f"t{i}") for i in range(10)]
    batch = submit(oai, lines)
    emu.advance(50)
    running = oai.batches.retrieve(batch.id)
    done = running.request_counts.completed
    assert 0 < done < 10
    cancelling = oai.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    assert cancelling.cancelled_at is None
    emu.advance(PROCESSING)
    b = oai.batches.retrieve(batch.id)
    assert b.status == "cancelled"
    assert b.cancelled_at is not None and b.cancelled_at >= b.cancelling_at
    assert b.completed_at is None
    assert b.request_counts.completed == done
    out = by_id(file_lines(oai, b.output_file_id))
    err = by_id(file_lines(oai, b.error_file_id))
    assert len(out) == done
    assert len(out) + len(err) == 10
    assert all(line["response"] is None and line["error"]["code"] for line in err.values())
    assert emu.stats()["cancels"] == 1


def test_cancel_while_validating_runs_nothing(emu: Emulator, oai: Any) -> None:
    batch = submit(oai, [chat_line("a", "x"), chat_line("b", "y")])
    assert oai.batches.cancel(batch.id).status == "cancelling"
    assert oai.batches.cancel(batch.id).status == "cancelling"  # idempotent while cancelling
    b = finish(emu, oai, batch.id)
    assert b.status == "cancelled"
    assert b.output_file_id is None
    assert b.request_counts.completed == 0


def test_cancel_a_finished_batch_is_a_400_not_a_409(emu: Emulator, oai: Any) -> None:
    b = run(emu, oai, [chat_line("a", "x")])
    with pytest.raises(openai.BadRequestError) as info:
        oai.batches.cancel(b.id)
    assert info.value.status_code == 400


# -- listing, errors, headers ---------------------------------------------------------------


def test_batches_list_pages_newest_first(emu: Emulator, oai: Any) -> None:
    made = [submit(oai, [chat_line("a", f"x{i}")]).id for i in range(5)]
    page = oai.batches.list(limit=2)
    assert [b.id for b in page.data] == made[::-1][:2]
    assert page.has_more is True
    assert [b.id for b in oai.batches.list(limit=2)] == made[::-1]
    last = oai.batches.list(limit=2, after=made[1])
    assert [b.id for b in last.data] == [made[0]]
    assert last.has_more is False


def test_unknown_batch_is_404_with_the_openai_envelope(oai: Any) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oai.batches.retrieve("batch_nope")
    assert info.value.status_code == 404
    assert isinstance(info.value.body, dict)
    assert info.value.body["type"] == "invalid_request_error"
    raw = oai.batches.with_raw_response.list()
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.http_request.headers["authorization"] == "Bearer emulator-key"


def test_missing_api_key_is_401(emu: Emulator) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(emu.openai_base_url + "/batches", timeout=5)
    assert info.value.code == 401
    assert json.loads(info.value.read())["error"]["type"] == "invalid_request_error"


def test_realtime_chat_and_input_token_count(emu: Emulator, oai: Any) -> None:
    reply = oai.chat.completions.create(
        model=GPT, messages=[{"role": "user", "content": "hi there"}]
    )
    assert reply.choices[0].message.content == "echo: hi there"
    count = oai.responses.input_tokens.count(model=GPT, input="hi there")
    assert count.input_tokens > 0
    assert (
        count.input_tokens
        == oai.responses.input_tokens.count(model=GPT, input="hi there").input_tokens
    )
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "EMU:400"}])
    stats = emu.stats()
    assert stats["realtime_calls"] == 2
    assert stats["token_count_calls"] == 2


def test_large_batch_is_fast_and_complete(emu: Emulator, oai: Any) -> None:
    lines = [chat_line(f"k{i}", f"row {i}") for i in range(2000)]
    batch, out, err = outcome(emu, oai, lines)
    assert batch.status == "completed"
    assert len(out) == 2000 and not err
    assert (
        read_jsonl(oai.files.content(batch.output_file_id).text)[0]["response"]["status_code"]
        == 200
    )
