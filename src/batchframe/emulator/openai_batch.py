"""OpenAI batches: create (with deferred validation), the Batch object, cancel, output files."""

from __future__ import annotations

import json
import random
from typing import Any

from . import ids
from .errors import ApiError
from .fates import Fate, canonical_body_hash, decide
from .openai_bodies import ENDPOINTS, check, error_body, input_tokens, prompt_for, render, usage_of
from .openai_validate import validate
from .state import BatchRecord, Row, State
from .timeline import TERMINAL, Schedule

VALIDATING_SHARE = 0.1
FINALIZING_SHARE = 0.1
OUTPUT_RETENTION = 30 * 86_400.0
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
CANCELLED_MESSAGE = "This request was not executed because the batch was cancelled."


def _check_create(payload: dict[str, Any]) -> None:
    endpoint = payload.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise ApiError(
            400,
            f"Invalid value for 'endpoint': {endpoint!r}. Supported: {', '.join(ENDPOINTS)}.",
            param="endpoint",
            code="invalid_value",
        )
    if payload.get("completion_window") != "24h":
        raise ApiError(
            400,
            "Invalid value for 'completion_window': only '24h' is supported.",
            param="completion_window",
            code="invalid_value",
        )
    metadata = payload.get("metadata")
    if metadata is not None:
        ok = isinstance(metadata, dict) and len(metadata) <= 16
        ok = ok and all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
            for k, v in metadata.items()
        )
        if not ok:
            raise ApiError(
                400,
                "Invalid 'metadata': at most 16 string pairs, keys up to 64 and values up "
                "to 512 characters.",
                param="metadata",
                code="invalid_value",
            )
    after = payload.get("output_expires_after")
    if after is not None:
        seconds = after.get("seconds") if isinstance(after, dict) else None
        if (
            not isinstance(after, dict)
            or after.get("anchor") != "created_at"
            or not isinstance(seconds, int)
            or not 3_600 <= seconds <= 2_592_000
        ):
            raise ApiError(
                400,
                "Invalid 'output_expires_after': anchor must be 'created_at' and seconds "
                "between 3600 and 2592000.",
                param="output_expires_after",
                code="invalid_value",
            )


def _enqueued_tokens(state: State, model: str, now: float) -> int:
    """Input tokens of this model's other batches that are still queued or running."""
    total = 0
    for other in state.newest_first("openai"):
        if other.model != model or other.schedule.fails:
            continue
        if other.schedule.stage(now) in TERMINAL:
            continue
        if other.token_estimate is None:
            endpoint = other.info["endpoint"]
            other.token_estimate = sum(input_tokens(endpoint, r.body) for r in other.rows)
        total += other.token_estimate
    return total


def create(state: State, payload: dict[str, Any]) -> BatchRecord:
    _check_create(payload)
    file_id = payload.get("input_file_id")
    stored = state.live_file(file_id) if isinstance(file_id, str) else None
    if stored is None:
        raise ApiError(404, f"No such File object: {file_id}", param="input_file_id")
    if stored.purpose != "batch":
        raise ApiError(
            400,
            f"File {file_id} has purpose {stored.purpose!r}; batches need purpose 'batch'.",
            param="input_file_id",
        )
    endpoint = payload["endpoint"]
    plan, now = state.plan, state.clock.now()
    parsed = validate(
        stored.data,
        endpoint,
        max_requests=plan.max_requests_per_file,
        max_bytes=plan.max_file_bytes,
    )
    batch_id = ids.batch_id()
    rows = []
    for custom_id, body in parsed.rows:
        body_hash = canonical_body_hash(body)
        attempt = state.attempt(body_hash)
        fate = check(endpoint, body) or decide(
            prompt_for(endpoint, body).last_user, body_hash, attempt, plan, state.seed
        )
        rows.append(Row(custom_id, body, body_hash, fate))
    errors = parsed.errors
    if not errors and plan.take("fail_validation"):
        errors.append(
            {
                "code": "invalid_file",
                "message": "Injected validation failure (FaultPlan.fail_validation).",
                "param": None,
                "line": None,
            }
        )
    estimate = None
    if not errors and plan.enqueued_token_limit is not None and parsed.model is not None:
        estimate = sum(input_tokens(endpoint, r.body) for r in rows)
        queued = _enqueued_tokens(state, parsed.model, now)
        if estimate + queued > plan.enqueued_token_limit:
            errors.append(
                {
                    "code": "token_limit_exceeded",
                    "message": f"Enqueued token limit reached for {parsed.model}: "
                    f"{queued} tokens already enqueued, this batch adds {estimate}, the "
                    f"limit is {plan.enqueued_token_limit}. Try again once some in-progress "
                    "batches have completed.",
                    "param": None,
                    "line": None,
                }
            )
    rng = random.Random(f"{state.seed}:{batch_id}")
    stalled = not errors and plan.take("stall_batches")
    schedule = Schedule.plan(
        now,
        state.processing_seconds,
        validating_share=VALIDATING_SHARE,
        finalizing_share=FINALIZING_SHARE,
        stalled=stalled,
    )
    schedule.fails = bool(errors)
    runnable = [not errors and row.fate.kind != "expire" for row in rows]
    if not errors and rows and plan.take("expire_batches"):
        order = list(range(len(rows)))
        rng.shuffle(order)
        for i in order[len(rows) // 2 :]:  # about half complete, the rest expire
            runnable[i] = False
    schedule.expires_early = not errors and not all(runnable)
    for row, done_at in zip(rows, schedule.row_times(runnable, rng)):
        row.done_at = done_at
    info = {
        "endpoint": endpoint,
        "input_file_id": file_id,
        "metadata": payload.get("metadata"),
        "output_expires_after": payload.get("output_expires_after"),
    }
    batch = BatchRecord(
        batch_id, "openai", state.next_seq(), rows, schedule, info, model=parsed.model
    )
    batch.errors = errors
    batch.token_estimate = estimate
    state.add_batch(batch)
    return batch


def cancel(state: State, batch: BatchRecord) -> None:
    now = state.clock.now()
    stage = batch.schedule.stage(now)
    if stage in ("validating", "running"):
        batch.schedule.cancel(now)
    elif stage != "cancelling":
        raise ApiError(400, f"Cannot cancel a batch with status '{_status(stage)}'.")
    state.counters.cancels += 1


def _status(stage: str) -> str:
    return "in_progress" if stage == "running" else stage


def _line(custom_id: str, response: Any, error: Any) -> dict[str, Any]:
    return {
        "id": ids.batch_request_id(),
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }


def _row_line(endpoint: str, row: Row) -> tuple[dict[str, Any], bool]:
    """(output/error line, is_success) for a row that ran."""
    fate: Fate = row.fate
    if fate.kind == "status0":  # as recorded from the real service
        return _line(row.custom_id, {"status_code": 0, "request_id": "", "body": {}}, None), False
    if fate.kind == "error":
        response = {
            "status_code": fate.status,
            "request_id": ids.request_id(),
            "body": error_body(fate),
        }
        return _line(row.custom_id, response, None), False
    body = render(endpoint, row.body, int(row.done_at))
    response = {"status_code": 200, "request_id": ids.request_id(), "body": body}
    return _line(row.custom_id, response, None), True


def _apply_line_faults(state: State, lines: list[dict[str, Any]], endpoint: str) -> None:
    plan = state.plan
    for _ in range(min(plan.take_all("drop_lines"), len(lines))):
        lines.pop()
    dup = plan.take_all("duplicate_lines")
    lines.extend(dict(line, id=ids.batch_request_id()) for line in lines[:dup])
    for n in range(plan.take_all("unknown_lines")):
        # One body that every runnable endpoint accepts.
        body = {
            "model": "emulator",
            "messages": [{"role": "user", "content": "unknown"}],
            "input": "unknown",
            "prompt": "unknown",
        }
        fake = Row(f"emulator-unknown-{n}", body, "", Fate("ok"), state.clock.now())
        lines.append(_row_line(endpoint, fake)[0])


def _write(
    state: State, batch: BatchRecord, kind: str, lines: list[dict[str, Any]], at: float
) -> str | None:
    if not lines:
        return None
    random.Random(f"{state.seed}:{batch.id}:{kind}").shuffle(lines)
    data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    after = batch.info.get("output_expires_after")
    ttl = float(after["seconds"]) if isinstance(after, dict) else OUTPUT_RETENTION
    stored = state.add_file(
        ids.file_id(),
        f"batch_{batch.id}_{kind}.jsonl",
        "batch_output",
        data.encode(),
        at + ttl,
        created_at=at,
    )
    return stored.id


def materialize(state: State, batch: BatchRecord) -> None:
    """Write the output and error files the first time the batch is seen terminal."""
    if batch.materialized:
        return
    now = state.clock.now()
    ended = batch.schedule.ended_at(now)
    if ended is None:
        return
    batch.materialized = True
    stage = batch.schedule.stage(now)
    usage = {"input_tokens": 0, "output_tokens": 0}
    if stage == "failed":
        state.record_retryable(batch.rows)
        state.unrun(batch.rows)
        batch.usage = _usage(0, 0)
        return
    endpoint = batch.info["endpoint"]
    cut = batch.schedule.cut()
    never_ran = {
        "code": "batch_cancelled" if stage == "cancelled" else "batch_expired",
        "message": CANCELLED_MESSAGE if stage == "cancelled" else EXPIRED_MESSAGE,
    }
    output: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    retry = []
    for row in batch.rows:
        if row.done_at > cut:
            errors.append(_line(row.custom_id, None, dict(never_ran)))
            retry.append(row)
            if row.fate.kind != "expire":  # EMU:expire rows used their attempt expiring
                state.unrun([row])
            continue
        line, ok = _row_line(endpoint, row)
        if ok:
            inp, out = usage_of(line["response"]["body"])
            usage["input_tokens"] += inp
            usage["output_tokens"] += out
        (output if ok else errors).append(line)
        if row.fate.retryable:
            retry.append(row)
    state.record_retryable(retry)
    if output:
        _apply_line_faults(state, output, endpoint)
    batch.output_file_id = _write(state, batch, "output", output, ended)
    batch.error_file_id = _write(state, batch, "error", errors, ended)
    batch.usage = _usage(usage["input_tokens"], usage["output_tokens"])


def _usage(inp: int, out: int) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": inp + out,
    }


def to_json(state: State, batch: BatchRecord, *, fresh: bool = False) -> dict[str, Any]:
    """The Batch object as of now (`fresh`: as returned by create, still validating)."""
    s = batch.schedule
    now = s.created if fresh else state.clock.now()
    stage = "validating" if fresh else s.stage(now)
    if not fresh:
        materialize(state, batch)
    started = (
        not fresh
        and not s.fails
        and now >= s.validated
        and (s.cancel_at is None or s.cancel_at >= s.validated)
    )
    seen = min(now, s.cut())
    completed = failed = 0
    if started:
        for row in batch.rows:
            if row.done_at <= seen:
                if row.fate.kind == "ok":
                    completed += 1
                else:
                    failed += 1
    end_at = s.natural_end()[1]
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.info["endpoint"],
        "model": batch.model if started else None,
        "errors": {"object": "list", "data": batch.errors} if stage == "failed" else None,
        "input_file_id": batch.info["input_file_id"],
        "completion_window": "24h",
        "status": _status(stage),
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": int(s.created),
        "in_progress_at": int(s.validated) if started else None,
        "expires_at": int(s.expires),
        "finalizing_at": int(s.run_end) if stage in ("finalizing", "completed") else None,
        "completed_at": int(s.finalized) if stage == "completed" else None,
        "failed_at": int(s.validated) if stage == "failed" else None,
        "expired_at": int(end_at) if stage == "expired" else None,
        "cancelling_at": int(s.cancel_at) if s.cancel_at is not None and not fresh else None,
        "cancelled_at": (
            int(s.cancel_end) if stage == "cancelled" and s.cancel_end is not None else None
        ),
        "request_counts": {
            "total": len(batch.rows) if started else 0,
            "completed": completed,
            "failed": failed,
        },
        "metadata": batch.info["metadata"],
        "usage": batch.usage,
    }
