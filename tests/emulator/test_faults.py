"""FaultPlan: every injected fault, the control endpoints, stats() and determinism."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from emu_helpers import (
    GPT,
    PROCESSING,
    areq,
    arun,
    by_id,
    chat_line,
    file_lines,
    finish,
    jsonl,
    outcome,
    run,
    submit,
    upload,
)

from batchframe.emulator import Emulator, FaultPlan

# -- the plan itself -------------------------------------------------------------------------


def test_defaults_inject_nothing_and_json_round_trips() -> None:
    plan = FaultPlan(
        row_error_rate=0.25,
        http_errors=[{"path": "/v1/files", "status": 429, "times": 2, "retry_after": 1}],
        expire_batches=1,
        enqueued_token_limit=1000,
    )
    again = FaultPlan.from_json(plan.to_json())
    assert again == plan
    assert again.http_errors[0]["times"] == 2
    blank = FaultPlan()
    assert blank.row_error_rate == blank.row_server_error_rate == 0
    assert blank.http_errors == [] and blank.enqueued_token_limit is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"row_error_rate": 1.5},
        {"row_error_rate": -0.1},
        {"row_server_error_rate": "0.5"},
        {"expire_batches": -1},
        {"drop_lines": 1.5},
        {"truncate_downloads": True},
        {"enqueued_token_limit": -5},
        {"http_errors": {"status": 500}},
        {"http_errors": [{"status": 200}]},
        {"http_errors": [{"status": 500, "bogus": 1}]},
        {"http_errors": [{"status": 500, "times": "2"}]},
    ],
)
def test_invalid_plans_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FaultPlan(**kwargs)


def test_unknown_fields_are_refused_from_json() -> None:
    with pytest.raises(ValueError, match="row_eror_rate"):
        FaultPlan.from_json('{"row_eror_rate": 0.1}')


def test_the_callers_plan_is_never_mutated(emu: Emulator, oai: Any) -> None:
    plan = FaultPlan(fail_validation=1, http_errors=[{"path": "/v1/batches", "status": 500}])
    emu.set_faults(plan)
    with pytest.raises(openai.InternalServerError):
        oai.batches.list()
    assert plan.fail_validation == 1 and plan.http_errors[0]["times"] == 1
    remaining = emu.faults
    assert remaining.http_errors[0]["times"] == 0
    assert remaining.fail_validation == 1
    remaining.fail_validation = 0  # a copy: the emulator keeps its own
    assert emu.faults.fail_validation == 1


# -- row faults -----------------------------------------------------------------------------


def _rows(n: int, prefix: str = "row") -> list[dict[str, Any]]:
    return [chat_line(f"{prefix}{i}", f"{prefix} text {i}") for i in range(n)]


def test_row_error_rate_fails_a_stable_share_permanently(emu: Emulator, oai: Any) -> None:
    emu.set_faults(FaultPlan(row_error_rate=0.3))
    lines = _rows(60)
    batch, out, err = outcome(emu, oai, lines)
    assert 8 <= len(err) <= 30, len(err)
    assert len(out) + len(err) == 60
    assert {line["response"]["status_code"] for line in err.values()} == {400}
    assert batch.request_counts.failed == len(err)
    failing = sorted(err)
    # Permanent: the same bodies fail again, and nothing else does.
    _, _, err2 = outcome(emu, oai, lines)
    assert sorted(err2) == failing
    # Stable per seed: another emulator with the same seed picks the same rows ...
    with Emulator(
        processing_seconds=PROCESSING, seed=11, faults=FaultPlan(row_error_rate=0.3)
    ) as same:
        _, _, err3 = outcome(same, same.openai_client(max_retries=0), lines)
    assert sorted(err3) == failing
    # ... and a different seed picks different ones.
    with Emulator(
        processing_seconds=PROCESSING, seed=12, faults=FaultPlan(row_error_rate=0.3)
    ) as other:
        _, _, err4 = outcome(other, other.openai_client(max_retries=0), lines)
    assert sorted(err4) != failing


def test_row_server_error_rate_fails_first_attempts_only(emu: Emulator, oai: Any) -> None:
    emu.set_faults(FaultPlan(row_server_error_rate=1.0))
    lines = _rows(5)
    _, out, err = outcome(emu, oai, lines)
    assert not out
    assert {line["response"]["status_code"] for line in err.values()} == {500}
    assert {line["response"]["body"]["error"]["type"] for line in err.values()} == {"server_error"}
    _, out, err = outcome(emu, oai, lines)
    assert len(out) == 5 and not err
    stats = emu.stats()
    assert stats["duplicate_submissions"] == 0  # retrying a 5xx is not paying twice
    assert sum(stats["retryable_failures_by_body"].values()) == 5


def test_row_rates_apply_to_anthropic(emu: Emulator, ant: Any) -> None:
    emu.set_faults(FaultPlan(row_error_rate=1.0))
    batch, results = arun(emu, ant, [areq("a", "x"), areq("b", "y")])
    assert batch.request_counts.errored == 2
    assert {r.result.error.error.type for r in results.values()} == {"invalid_request_error"}
    emu.set_faults(FaultPlan(row_server_error_rate=1.0))
    _, results = arun(emu, ant, [areq("c", "z")])
    assert results["c"].result.error.error.type == "api_error"
    _, results = arun(emu, ant, [areq("c", "z")])
    assert results["c"].result.type == "succeeded"


# -- HTTP faults ----------------------------------------------------------------------------


def test_http_429_on_upload_with_retry_after(emu: Emulator, oai: Any) -> None:
    emu.set_faults(
        FaultPlan(
            http_errors=[
                {"method": "POST", "path": "/v1/files", "status": 429, "times": 2, "retry_after": 7}
            ]
        )
    )
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as info:
            upload(oai, b"{}\n")
        assert info.value.response.headers["retry-after"] == "7"
        assert isinstance(info.value.body, dict)
        assert info.value.body["code"] == "rate_limit_exceeded"
    assert upload(oai, b"{}\n").id
    stats = emu.stats()
    assert stats["http_errors_injected"] == 2
    assert stats["uploads"] == 1
    assert stats["http_calls"]["POST /v1/files"] == 3


def test_http_500_every_time_with_a_pattern(emu: Emulator, oai: Any) -> None:
    batch = submit(oai, [chat_line("a", "x")])
    emu.set_faults(
        FaultPlan(
            http_errors=[{"method": "GET", "path": "/v1/batches/*", "status": 500, "times": None}]
        )
    )
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            oai.batches.retrieve(batch.id)
    assert oai.batches.list().data  # GET /v1/batches does not match /v1/batches/*
    emu.set_faults(FaultPlan())
    assert oai.batches.retrieve(batch.id).id == batch.id


def test_should_retry_false_stops_the_sdk_retrying(emu: Emulator) -> None:
    patient = emu.openai_client(max_retries=2)
    emu.set_faults(
        FaultPlan(
            http_errors=[{"path": "/v1/batches", "status": 500, "times": 5, "should_retry": False}]
        )
    )
    with pytest.raises(openai.InternalServerError) as info:
        patient.batches.create(
            input_file_id="file-x", endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert info.value.response.headers["x-should-retry"] == "false"
    assert emu.stats()["http_errors_injected"] == 1


def test_the_sdk_retries_injected_errors_it_may_retry(emu: Emulator) -> None:
    patient = emu.openai_client(max_retries=2)
    emu.set_faults(
        FaultPlan(
            http_errors=[{"path": "/v1/files", "status": 503, "times": 2, "retry_after_ms": 1}]
        )
    )
    start = time.perf_counter()
    assert upload(patient, b"{}\n").id
    assert time.perf_counter() - start < 0.9  # SDK backoff alone would take over 1.1 s
    assert emu.stats()["http_calls"]["POST /v1/files"] == 3


def test_http_errors_on_anthropic_paths_use_its_envelope(emu: Emulator, ant: Any) -> None:
    emu.set_faults(
        FaultPlan(http_errors=[{"path": "/v1/messages/batches", "status": 529, "message": "busy"}])
    )
    with pytest.raises(anthropic.APIStatusError) as info:
        ant.messages.batches.create(requests=[areq("a", "x")])
    assert info.value.status_code == 529
    body = info.value.body
    assert isinstance(body, dict)
    assert body["error"] == {"type": "overloaded_error", "message": "busy"}
    assert body["request_id"] == info.value.request_id
    assert ant.messages.batches.create(requests=[areq("a", "x")]).id


def test_truncated_downloads(emu: Emulator, oai: Any, ant: Any) -> None:
    batch = run(emu, oai, _rows(20))
    emu.set_faults(FaultPlan(truncate_downloads=1))
    with pytest.raises(openai.APIConnectionError):
        oai.files.content(batch.output_file_id)
    assert len(file_lines(oai, batch.output_file_id)) == 20  # the next download is whole

    ab = ant.messages.batches.create(requests=[areq(f"r{i}", "y" * 50) for i in range(20)])
    emu.advance(PROCESSING + 1)
    emu.set_faults(FaultPlan(truncate_downloads=1))
    with pytest.raises(httpx2.TransportError):
        list(ant.messages.batches.results(ab.id))
    assert len(list(ant.messages.batches.results(ab.id))) == 20
    stats = emu.stats()
    assert stats["truncated_downloads"] == 2
    assert stats["downloads"] == 4


# -- batch faults ---------------------------------------------------------------------------


def test_fail_validation(emu: Emulator, oai: Any) -> None:
    emu.set_faults(FaultPlan(fail_validation=1))
    failed = run(emu, oai, _rows(3))
    assert failed.status == "failed"
    assert failed.errors is not None and failed.errors.data[0].code
    assert failed.output_file_id is None and failed.error_file_id is None
    assert run(emu, oai, _rows(3)).status == "completed"


def test_a_failed_batch_does_not_use_up_first_attempts(emu: Emulator, oai: Any) -> None:
    """EMU:500 fails the first attempt that runs; a batch that never ran does not count."""
    emu.set_faults(FaultPlan(fail_validation=1))
    line = chat_line("x", "EMU:500")
    assert run(emu, oai, [line]).status == "failed"
    _, out, err = outcome(emu, oai, [line])
    assert err["x"]["response"]["status_code"] == 500 and not out
    _, out, err = outcome(emu, oai, [line])
    assert set(out) == {"x"}


def test_cancelled_rows_do_not_use_up_first_attempts(emu: Emulator, ant: Any) -> None:
    batch = ant.messages.batches.create(requests=[areq("x", "EMU:429")])
    ant.messages.batches.cancel(batch.id)
    emu.advance(PROCESSING + 1)
    assert [r.result.type for r in ant.messages.batches.results(batch.id)] == ["canceled"]
    _, results = arun(emu, ant, [areq("x", "EMU:429")])
    assert results["x"].result.type == "errored"
    _, results = arun(emu, ant, [areq("x", "EMU:429")])
    assert results["x"].result.type == "succeeded"


def test_expire_batches_openai(emu: Emulator, oai: Any) -> None:
    emu.set_faults(FaultPlan(expire_batches=1))
    batch = submit(oai, _rows(10))
    emu.advance(50)
    assert oai.batches.retrieve(batch.id).status == "in_progress"
    b = finish(emu, oai, batch.id)
    assert b.status == "expired"
    assert b.expired_at is not None
    out = by_id(file_lines(oai, b.output_file_id))
    err = by_id(file_lines(oai, b.error_file_id))
    assert len(out) == 5 and len(err) == 5
    assert {line["error"]["code"] for line in err.values()} == {"batch_expired"}
    assert b.request_counts.completed == 5
    assert run(emu, oai, _rows(10)).status == "completed"  # the next batch is fine


def test_expire_batches_anthropic(emu: Emulator, ant: Any) -> None:
    emu.set_faults(FaultPlan(expire_batches=1))
    batch, results = arun(emu, ant, [areq(f"r{i}", f"t{i}") for i in range(10)])
    assert batch.request_counts.expired == 5
    assert batch.request_counts.succeeded == 5
    assert sum(r.result.type == "expired" for r in results.values()) == 5


def test_stall_batches_until_cancelled_or_the_window_closes(emu: Emulator, oai: Any) -> None:
    emu.set_faults(FaultPlan(stall_batches=2))
    stuck = submit(oai, _rows(4))
    cancelled = submit(oai, _rows(2, "c"))
    emu.advance(PROCESSING * 20)
    b = oai.batches.retrieve(stuck.id)
    assert b.status == "in_progress"
    assert b.request_counts.completed == 0
    oai.batches.cancel(cancelled.id)
    emu.advance(PROCESSING)
    assert oai.batches.retrieve(cancelled.id).status == "cancelled"
    emu.advance(86_400)
    b = oai.batches.retrieve(stuck.id)
    assert b.status == "expired"
    assert b.expired_at == b.expires_at
    assert b.output_file_id is None
    err = by_id(file_lines(oai, b.error_file_id))
    assert len(err) == 4
    assert {line["error"]["code"] for line in err.values()} == {"batch_expired"}


def test_line_faults_openai(emu: Emulator, oai: Any) -> None:
    emu.set_faults(FaultPlan(duplicate_lines=2, drop_lines=1, unknown_lines=1))
    batch = run(emu, oai, _rows(10))
    lines = file_lines(oai, batch.output_file_id)
    ids = [line["custom_id"] for line in lines]
    assert len(lines) == 10 - 1 + 2 + 1
    known = {f"row{i}" for i in range(10)}
    assert len(set(ids) & known) == 9  # one dropped
    assert len([i for i in ids if i in known]) == 11  # two repeated
    assert len([i for i in ids if i not in known]) == 1  # one unknown
    # Line faults hit one file only.
    again = run(emu, oai, _rows(10, "again"))
    assert len(file_lines(oai, again.output_file_id)) == 10


def test_line_faults_anthropic(emu: Emulator, ant: Any) -> None:
    emu.set_faults(FaultPlan(duplicate_lines=1, drop_lines=2, unknown_lines=3))
    batch = ant.messages.batches.create(requests=[areq(f"r{i}", f"t{i}") for i in range(10)])
    emu.advance(PROCESSING + 1)
    ids = [r.custom_id for r in ant.messages.batches.results(batch.id)]
    known = {f"r{i}" for i in range(10)}
    assert len(ids) == 10 - 2 + 1 + 3
    assert len(set(ids) & known) == 8
    assert len([i for i in ids if i not in known]) == 3


def test_enqueued_token_limit(emu: Emulator, oai: Any) -> None:
    lines = _rows(10)
    first = submit(oai, lines)
    emu.advance(PROCESSING + 1)
    size = oai.batches.retrieve(first.id).usage.input_tokens
    emu.set_faults(FaultPlan(enqueued_token_limit=size * 2 - 1))
    running = submit(oai, _rows(10, "b"))  # fits alone
    over = submit(oai, _rows(10, "c"))  # does not fit next to the running one
    other_model = submit(
        oai, [chat_line(f"m{i}", f"row text {i}", model="gpt-4o") for i in range(10)]
    )
    emu.advance(PROCESSING / 2)
    assert oai.batches.retrieve(running.id).status == "in_progress"
    failed = oai.batches.retrieve(over.id)
    assert failed.status == "failed"
    assert [e.code for e in failed.errors.data] == ["token_limit_exceeded"]
    assert oai.batches.retrieve(other_model.id).status == "in_progress"  # the cap is per model
    emu.advance(PROCESSING)
    assert oai.batches.retrieve(running.id).status == "completed"
    assert run(emu, oai, _rows(10, "c")).status == "completed"  # room again


# -- stats and control endpoints --------------------------------------------------------------


def test_stats_counters(emu: Emulator, oai: Any, ant: Any) -> None:
    line = chat_line("a", "same body")
    first = run(emu, oai, [line, chat_line("b", "other")])
    run(emu, oai, [line])  # the same body again, after it succeeded: paid twice
    arun(emu, ant, [areq("x", "hello")])
    oai.files.content(first.output_file_id)
    stats = emu.stats()
    assert stats["uploads"] == 2
    assert stats["batches_created"] == 3
    assert len(stats["batch_ids"]) == 3 and stats["batch_ids"][0] == first.id
    assert stats["requests_submitted"] == 4
    assert stats["custom_ids_by_batch"][first.id] == 2
    assert sorted(stats["submissions_by_body"].values()) == [1, 1, 2]
    assert stats["duplicate_submissions"] == 1
    assert stats["downloads"] == 2  # one OpenAI file, one Anthropic results stream
    assert stats["http_calls"]["POST /v1/batches"] == 2
    assert stats["http_calls"]["POST /v1/messages/batches"] == 1
    assert stats["clock_offset"] == pytest.approx(3 * (PROCESSING + 1))
    assert stats["faults_remaining"] == FaultPlan().to_dict()
    emu.reset()
    cleared = emu.stats()
    assert cleared["batches_created"] == 0 and cleared["files"] == 0
    assert cleared["clock_offset"] == stats["clock_offset"]  # the clock stays
    with pytest.raises(openai.NotFoundError):
        oai.batches.retrieve(first.id)


def _control(emu: Emulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emu.url + path, data=data, method=method)
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_control_endpoints_over_http(emu: Emulator, oai: Any) -> None:
    status, plan = _control(emu, "POST", "/_emulator/faults", {"fail_validation": 1})
    assert status == 200 and plan["fail_validation"] == 1
    assert emu.faults.fail_validation == 1
    status, plan = _control(emu, "GET", "/_emulator/faults")
    assert plan["fail_validation"] == 1
    batch = submit(oai, [chat_line("a", "x")])
    status, moved = _control(emu, "POST", "/_emulator/advance", {"seconds": PROCESSING + 1})
    assert status == 200 and moved["clock_offset"] == PROCESSING + 1
    assert oai.batches.retrieve(batch.id).status == "failed"
    status, stats = _control(emu, "GET", "/_emulator/stats")
    assert stats["batches_created"] == 1 and stats["faults_remaining"]["fail_validation"] == 0
    status, _ = _control(emu, "POST", "/_emulator/reset", {})
    assert status == 200
    assert _control(emu, "GET", "/_emulator/stats")[1]["batches_created"] == 0
    # Bad input is a 400 with a reason, and leaves everything as it was.
    assert _control(emu, "POST", "/_emulator/faults", {"nope": 1})[0] == 400
    assert _control(emu, "POST", "/_emulator/advance", {"seconds": -1})[0] == 400
    assert _control(emu, "POST", "/_emulator/advance", {"seconds": "soon"})[0] == 400
    assert _control(emu, "GET", "/_emulator/nothing")[0] == 404
    assert emu.stats()["clock_offset"] == PROCESSING + 1


def test_control_endpoints_are_not_subject_to_http_faults(emu: Emulator) -> None:
    emu.set_faults(FaultPlan(http_errors=[{"path": "*", "status": 500, "times": None}]))
    assert _control(emu, "GET", "/_emulator/stats")[0] == 200
    assert emu.stats()["http_errors_injected"] == 0


# -- determinism ----------------------------------------------------------------------------


def _answers(seed: int, body_lines: list[dict[str, Any]]) -> dict[str, Any]:
    plan = FaultPlan(row_error_rate=0.3, row_server_error_rate=0.3)
    with Emulator(processing_seconds=PROCESSING, seed=seed, faults=plan) as emu:
        client = emu.openai_client(max_retries=0)
        _, out, err = outcome(emu, client, body_lines)
    result: dict[str, Any] = {}
    for key, line in {**out, **err}.items():
        response = line["response"]
        body = response["body"]
        if response["status_code"] == 200:
            result[key] = (200, body["choices"][0]["message"]["content"], body["usage"])
        else:
            result[key] = (response["status_code"], body["error"]["message"])
    return result


def test_same_seed_and_body_give_the_same_answer() -> None:
    schema = {
        "type": "object",
        "properties": {"v": {"type": "integer"}, "l": {"enum": ["a", "b", "c"]}},
    }
    lines = [
        chat_line(
            f"k{i}",
            f"determinism {i}",
            response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        )
        for i in range(30)
    ]
    first = _answers(3, lines)
    assert first == _answers(3, lines)
    assert first != _answers(4, lines)  # the seed changes which rows fail
    # Order and custom_id do not matter, only the body.
    renamed = [dict(line, custom_id=f"z{i}") for i, line in enumerate(reversed(lines))]
    again = _answers(3, renamed)
    assert sorted(map(str, again.values())) == sorted(map(str, first.values()))


def test_the_model_name_is_kept_verbatim(emu: Emulator, oai: Any) -> None:
    _, out, _ = outcome(emu, oai, [chat_line("a", "x", model=GPT)])
    assert out["a"]["response"]["body"]["model"] == GPT


def test_unknown_lines_bodies_do_not_break_embeddings(emu: Emulator, oai: Any) -> None:
    emu.set_faults(FaultPlan(unknown_lines=1))
    lines = [
        {
            "custom_id": "e",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "text-embedding-3-small", "input": "x", "dimensions": 4},
        }
    ]
    f = upload(oai, jsonl(lines))
    batch = oai.batches.create(
        input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    b = finish(emu, oai, batch.id)
    assert len(file_lines(oai, b.output_file_id)) == 2
