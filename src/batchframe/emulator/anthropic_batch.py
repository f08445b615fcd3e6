"""Anthropic Message Batches: create, the MessageBatch object, cancel, the results file."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

from . import ids
from .anthropic_bodies import (
    CUSTOM_ID,
    check_params,
    check_row,
    error_object,
    for_anthropic,
    message,
)
from .errors import ApiError
from .fates import canonical_body_hash, decide
from .prompts import from_anthropic
from .state import BatchRecord, Row, State
from .timeline import Schedule

ARCHIVE_AFTER = 29 * 86_400.0


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _validate(payload: dict[str, Any], size: int, state: State) -> list[dict[str, Any]]:
    requests = payload.get("requests")
    if not isinstance(requests, list) or not requests:
        raise ApiError(400, "requests: a non-empty list of requests is required")
    plan = state.plan
    if size > plan.anthropic_max_bytes:
        raise ApiError(
            413,
            f"Request too large: {size} bytes; a batch may be at most {plan.anthropic_max_bytes}.",
        )
    if len(requests) > plan.anthropic_max_requests:
        raise ApiError(
            400,
            f"requests: a batch may hold at most {plan.anthropic_max_requests} requests, "
            f"got {len(requests)}",
        )
    seen: set[str] = set()
    for i, item in enumerate(requests):
        if not isinstance(item, dict):
            raise ApiError(400, f"requests.{i}: must be an object with custom_id and params")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            raise ApiError(
                400,
                f"requests.{i}.custom_id: {custom_id!r} must match ^[a-zA-Z0-9_-]{{1,64}}$",
            )
        if custom_id in seen:
            raise ApiError(
                400,
                f"requests.{i}.custom_id: duplicate custom_id {custom_id!r}; custom_id values "
                "must be unique within a batch",
            )
        seen.add(custom_id)
        params = item.get("params")
        if not isinstance(params, dict):
            raise ApiError(400, f"requests.{i}.params: Field required")
        check_params(params, prefix=f"requests.{i}.params.")
    return requests


def create(state: State, payload: dict[str, Any], *, size: int, version: str) -> BatchRecord:
    requests = _validate(payload, size, state)
    plan, now = state.plan, state.clock.now()
    batch_id = ids.message_batch_id()
    rows = []
    for item in requests:
        params = item["params"]
        body_hash = canonical_body_hash(params)
        attempt = state.attempt(body_hash)
        fate = check_row(params, version) or decide(
            from_anthropic(params).last_user, body_hash, attempt, plan, state.seed
        )
        rows.append(Row(item["custom_id"], params, body_hash, for_anthropic(fate)))
    rng = random.Random(f"{state.seed}:{batch_id}")
    schedule = Schedule.plan(
        now,
        state.processing_seconds,
        validating_share=0.0,
        finalizing_share=0.0,
        stalled=plan.take("stall_batches"),
    )
    runnable = [row.fate.kind != "expire" for row in rows]
    if plan.take("expire_batches"):
        order = list(range(len(rows)))
        rng.shuffle(order)
        for i in order[len(rows) // 2 :]:
            runnable[i] = False
    schedule.expires_early = not all(runnable)
    for row, done_at in zip(rows, schedule.row_times(runnable, rng)):
        row.done_at = done_at
    info = {"anthropic_version": version}
    batch = BatchRecord(batch_id, "anthropic", state.next_seq(), rows, schedule, info)
    state.add_batch(batch)
    return batch


def cancel(state: State, batch: BatchRecord) -> None:
    now = state.clock.now()
    stage = batch.schedule.stage(now)
    if stage == "running":
        batch.schedule.cancel(now)
    elif stage != "cancelling":
        raise ApiError(400, f"Batch {batch.id} has already ended and cannot be canceled.")
    state.counters.cancels += 1


def _result(row: Row, ran: bool, cancelled: bool) -> tuple[dict[str, Any], str]:
    if not ran:
        kind = "canceled" if cancelled else "expired"
        return {"type": kind}, kind
    if row.fate.kind == "error":
        return {"type": "errored", "error": error_object(row.fate)}, "errored"
    msg = message(row.body, service_tier="batch")
    return {"type": "succeeded", "message": msg}, "succeeded"


def _apply_line_faults(state: State, lines: list[dict[str, Any]]) -> None:
    plan = state.plan
    succeeded = [i for i, line in enumerate(lines) if line["result"]["type"] == "succeeded"]
    for i in sorted(succeeded[: plan.take_all("drop_lines")], reverse=True):
        del lines[i]
    lines.extend(lines[: plan.take_all("duplicate_lines")])
    for n in range(plan.take_all("unknown_lines")):
        params = {
            "model": "emulator",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "unknown"}],
        }
        lines.append(
            {
                "custom_id": f"emulator-unknown-{n}",
                "result": {"type": "succeeded", "message": message(params, service_tier="batch")},
            }
        )


def materialize(state: State, batch: BatchRecord) -> None:
    """Build the results file the first time the batch is seen ended."""
    if batch.materialized or batch.schedule.ended_at(state.clock.now()) is None:
        return
    batch.materialized = True
    cut = batch.schedule.cut()
    cancelled = batch.schedule.cancel_at is not None
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    lines = []
    retry = []
    for row in batch.rows:
        ran = row.done_at <= cut
        result, kind = _result(row, ran, cancelled)
        counts[kind] += 1
        lines.append({"custom_id": row.custom_id, "result": result})
        if not ran or row.fate.retryable:
            retry.append(row)
        if not ran and row.fate.kind != "expire":  # EMU:expire rows used their attempt
            state.unrun([row])
    state.record_retryable(retry)
    _apply_line_faults(state, lines)
    random.Random(f"{state.seed}:{batch.id}:results").shuffle(lines)
    text = "".join(
        json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines
    )
    batch.results = text.encode("utf-8")
    batch.counts = counts


def archived(state: State, batch: BatchRecord) -> bool:
    return state.clock.now() >= batch.schedule.created + ARCHIVE_AFTER


def to_json(state: State, batch: BatchRecord, *, fresh: bool = False) -> dict[str, Any]:
    s = batch.schedule
    now = s.created if fresh else state.clock.now()
    if not fresh:
        materialize(state, batch)
    ended = None if fresh else s.ended_at(now)
    status = "ended" if ended is not None else "in_progress"
    if ended is None and s.cancel_at is not None:
        status = "canceling"
    counts = (
        batch.counts
        if ended is not None
        else {
            "processing": len(batch.rows),
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        }
    )
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": dict(counts),
        "ended_at": rfc3339(ended) if ended is not None else None,
        "created_at": rfc3339(s.created),
        "expires_at": rfc3339(s.expires),
        "archived_at": rfc3339(s.created + ARCHIVE_AFTER) if archived(state, batch) else None,
        "cancel_initiated_at": rfc3339(s.cancel_at) if s.cancel_at is not None else None,
        # Relative: the SDK joins it to its own base URL, whatever host/port we run on.
        "results_url": f"/v1/messages/batches/{batch.id}/results" if ended is not None else None,
    }
