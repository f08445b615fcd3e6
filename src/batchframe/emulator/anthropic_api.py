"""Anthropic routes: /v1/messages/batches*, /v1/messages and /v1/messages/count_tokens."""

from __future__ import annotations

from typing import Any

from . import anthropic_batch, tokens
from .anthropic_bodies import check_params, check_row, message
from .errors import ApiError
from .fates import canonical_body_hash, decide
from .prompts import from_anthropic
from .server import Request, Response, Router
from .state import BatchRecord, State


def _limit(req: Request) -> int:
    raw = req.query.get("limit") or "20"
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, "limit: Input should be a valid integer") from None
    if not 1 <= limit <= 1000:
        raise ApiError(400, "limit: Input should be between 1 and 1000")
    return limit


def _page(items: list[dict[str, Any]], order: list[str], req: Request) -> dict[str, Any]:
    """Newest first; after_id pages towards older batches, before_id towards newer ones."""
    limit = _limit(req)
    after, before = req.query.get("after_id"), req.query.get("before_id")
    for cursor in (after, before):
        if cursor and cursor not in order:
            raise ApiError(400, f"Invalid cursor: no message batch with id {cursor!r}")
    if before:
        end = order.index(before)
        start = max(0, end - limit)
        data, has_more = items[start:end], start > 0
    else:
        start = order.index(after) + 1 if after else 0
        data, has_more = items[start : start + limit], start + limit < len(items)
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


class AnthropicApi:
    def __init__(self, state: State) -> None:
        self.state = state

    def register(self, router: Router) -> None:
        add = router.add
        add("POST", "/v1/messages/batches", self.create_batch)
        add("GET", "/v1/messages/batches", self.list_batches)
        add("GET", "/v1/messages/batches/{id}", self.get_batch)
        add("DELETE", "/v1/messages/batches/{id}", self.delete_batch)
        add("POST", "/v1/messages/batches/{id}/cancel", self.cancel_batch)
        add("GET", "/v1/messages/batches/{id}/results", self.results)
        add("POST", "/v1/messages", self.create_message)
        add("POST", "/v1/messages/count_tokens", self.count_tokens)

    def _batch(self, batch_id: str) -> BatchRecord:
        batch = self.state.get_batch(batch_id, "anthropic")
        if batch is None:
            raise ApiError(404, f"No message batch found with id '{batch_id}'.")
        return batch

    def create_batch(self, req: Request) -> Response:
        payload = req.json_object()
        version = req.headers.get("anthropic-version", "")
        with self.state.lock:
            batch = anthropic_batch.create(self.state, payload, size=len(req.body), version=version)
            return Response.json(anthropic_batch.to_json(self.state, batch, fresh=True))

    def get_batch(self, req: Request) -> Response:
        with self.state.lock:
            batch = self._batch(req.params["id"])
            return Response.json(anthropic_batch.to_json(self.state, batch))

    def list_batches(self, req: Request) -> Response:
        with self.state.lock:
            batches = self.state.newest_first("anthropic")
            items = [anthropic_batch.to_json(self.state, b) for b in batches]
            return Response.json(_page(items, [b.id for b in batches], req))

    def cancel_batch(self, req: Request) -> Response:
        with self.state.lock:
            batch = self._batch(req.params["id"])
            anthropic_batch.cancel(self.state, batch)
            return Response.json(anthropic_batch.to_json(self.state, batch))

    def delete_batch(self, req: Request) -> Response:
        with self.state.lock:
            batch = self._batch(req.params["id"])
            if batch.schedule.ended_at(self.state.clock.now()) is None:
                raise ApiError(
                    400,
                    f"Message batch {batch.id} is still processing; cancel it and wait for it "
                    "to end before deleting it.",
                )
            batch.deleted = True
            return Response.json({"id": batch.id, "type": "message_batch_deleted"})

    def results(self, req: Request) -> Response:
        with self.state.lock:
            batch = self._batch(req.params["id"])
            anthropic_batch.materialize(self.state, batch)
            if batch.results is None:
                raise ApiError(400, f"Message batch {batch.id} has not ended yet.")
            if anthropic_batch.archived(self.state, batch):
                raise ApiError(404, f"Results of message batch {batch.id} have been archived.")
            self.state.counters.downloads += 1
            return Response(200, batch.results, "application/x-jsonl", download=True)

    def create_message(self, req: Request) -> Response:
        params = req.json_object()
        check_params(params)
        version = req.headers.get("anthropic-version", "")
        with self.state.lock:
            self.state.counters.realtime_calls += 1
            fate = check_row(params, version)
            if fate is None:
                body_hash = canonical_body_hash(params)
                attempt = self.state.realtime_attempt(body_hash)
                text = from_anthropic(params).last_user
                fate = decide(text, body_hash, attempt, self.state.plan, self.state.seed)
        if fate.kind == "error":
            raise ApiError(fate.status, fate.message)
        return Response.json(message(params, service_tier="standard"))

    def count_tokens(self, req: Request) -> Response:
        params = req.json_object()
        if not isinstance(params.get("model"), str) or not isinstance(params.get("messages"), list):
            raise ApiError(400, "model and messages: Field required")
        with self.state.lock:
            self.state.counters.token_count_calls += 1
        return Response.json({"input_tokens": tokens.prompt_tokens(from_anthropic(params).texts)})
