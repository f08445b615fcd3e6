"""OpenAI routes under /v1: files, batches, and the realtime endpoints."""

from __future__ import annotations

from typing import Any

from . import ids, multipart, openai_batch
from .errors import ApiError
from .fates import canonical_body_hash, decide
from .openai_bodies import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    MODERATIONS,
    RESPONSES,
    check,
    input_tokens,
    prompt_for,
    render,
)
from .server import Request, Response, Router
from .state import BatchRecord, State, StoredFile

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
INPUT_RETENTION = 30 * 86_400.0  # batch input files expire after 30 days by default


def _int_param(req: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"Invalid '{name}': expected an integer.", param=name) from None
    if not lo <= value <= hi:
        raise ApiError(400, f"Invalid '{name}': must be between {lo} and {hi}.", param=name)
    return value


def _page(ids_in_order: list[str], items: list[Any], after: str | None, limit: int) -> dict:
    """An OpenAI list page; the SDK asks for the next one with after=<last id of data>."""
    start = 0
    if after:
        if after not in ids_in_order:
            raise ApiError(400, f"Invalid 'after': no object with id {after!r}.", param="after")
        start = ids_in_order.index(after) + 1
    data = items[start : start + limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": start + limit < len(items),
    }


class OpenAIApi:
    def __init__(self, state: State) -> None:
        self.state = state

    def register(self, router: Router) -> None:
        add = router.add
        add("POST", "/v1/files", self.upload)
        add("GET", "/v1/files", self.list_files)
        add("GET", "/v1/files/{id}", self.get_file)
        add("DELETE", "/v1/files/{id}", self.delete_file)
        add("GET", "/v1/files/{id}/content", self.file_content)
        add("POST", "/v1/batches", self.create_batch)
        add("GET", "/v1/batches", self.list_batches)
        add("GET", "/v1/batches/{id}", self.get_batch)
        add("POST", "/v1/batches/{id}/cancel", self.cancel_batch)
        add("POST", "/v1/responses/input_tokens", self.count_input_tokens)
        for endpoint in (CHAT, RESPONSES, EMBEDDINGS, COMPLETIONS, MODERATIONS):
            add("POST", endpoint, self.realtime)

    # -- files -----------------------------------------------------------------------------

    def _file(self, file_id: str) -> StoredFile:
        stored = self.state.live_file(file_id)
        if stored is None:
            raise ApiError(404, f"No such File object: {file_id}", param="id")
        return stored

    def upload(self, req: Request) -> Response:
        parts = multipart.parse(req.headers.get("content-type", ""), req.body)
        purpose = parts["purpose"].text() if "purpose" in parts else None
        if purpose is None:
            raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose")
        if purpose not in FILE_PURPOSES:
            raise ApiError(400, f"Invalid value for 'purpose': {purpose!r}.", param="purpose")
        upload = parts.get("file")
        if upload is None or upload.filename is None:
            raise ApiError(400, "Missing required parameter: 'file'.", param="file")
        if purpose == "batch" and not upload.filename.lower().endswith(".jsonl"):
            raise ApiError(
                400,
                f"Invalid file format for Batch API. Must be .jsonl (got {upload.filename!r}).",
                param="file",
            )
        expires_after = None
        if "expires_after[anchor]" in parts or "expires_after[seconds]" in parts:
            anchor = (
                parts["expires_after[anchor]"].text() if "expires_after[anchor]" in parts else ""
            )
            seconds_raw = (
                parts["expires_after[seconds]"].text() if "expires_after[seconds]" in parts else ""
            )
            if anchor != "created_at" or not seconds_raw.isdigit():
                raise ApiError(400, "Invalid 'expires_after'.", param="expires_after")
            expires_after = int(seconds_raw)
            if not 3_600 <= expires_after <= 2_592_000:
                raise ApiError(
                    400,
                    "Invalid 'expires_after.seconds': must be between 3600 and 2592000.",
                    param="expires_after.seconds",
                )
        with self.state.lock:
            now = self.state.clock.now()
            ttl: float | None = None if expires_after is None else float(expires_after)
            if ttl is None and purpose == "batch":
                ttl = INPUT_RETENTION
            expires = None if ttl is None else now + ttl
            stored = self.state.add_file(
                ids.file_id(), upload.filename, purpose, upload.data, expires, created_at=now
            )
            self.state.counters.uploads += 1
            return Response.json(stored.to_json())

    def get_file(self, req: Request) -> Response:
        with self.state.lock:
            return Response.json(self._file(req.params["id"]).to_json())

    def list_files(self, req: Request) -> Response:
        limit = _int_param(req, "limit", 10_000, 1, 10_000)
        order = req.query.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise ApiError(400, "Invalid 'order': must be 'asc' or 'desc'.", param="order")
        purpose = req.query.get("purpose")
        with self.state.lock:
            for batch in self.state.newest_first("openai"):
                # Output files of batches that ended unobserved exist all the same.
                openai_batch.materialize(self.state, batch)
            files = sorted(self.state.live_files(), key=lambda f: f.seq, reverse=order == "desc")
            if purpose:
                files = [f for f in files if f.purpose == purpose]
            cursor_ids = [f.id for f in files]
            after = req.query.get("after")
            if after and after not in cursor_ids and after in self.state.seq_of:
                # The cursor object was deleted since: continue from where it stood.
                pivot = self.state.seq_of[after]
                files = [f for f in files if (f.seq < pivot) == (order == "desc")]
                cursor_ids, after = [f.id for f in files], None
            page = _page(cursor_ids, [f.to_json() for f in files], after, limit)
            return Response.json(page)

    def delete_file(self, req: Request) -> Response:
        with self.state.lock:
            stored = self._file(req.params["id"])
            del self.state.files[stored.id]
            return Response.json({"id": stored.id, "object": "file", "deleted": True})

    def file_content(self, req: Request) -> Response:
        with self.state.lock:
            stored = self._file(req.params["id"])
            self.state.counters.downloads += 1
            return Response(200, stored.data, "application/octet-stream", download=True)

    # -- batches ---------------------------------------------------------------------------

    def _batch(self, batch_id: str) -> BatchRecord:
        batch = self.state.get_batch(batch_id, "openai")
        if batch is None:
            raise ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
        return batch

    def create_batch(self, req: Request) -> Response:
        payload = req.json_object()
        with self.state.lock:
            batch = openai_batch.create(self.state, payload)
            return Response.json(openai_batch.to_json(self.state, batch, fresh=True))

    def get_batch(self, req: Request) -> Response:
        with self.state.lock:
            return Response.json(openai_batch.to_json(self.state, self._batch(req.params["id"])))

    def cancel_batch(self, req: Request) -> Response:
        with self.state.lock:
            batch = self._batch(req.params["id"])
            openai_batch.cancel(self.state, batch)
            return Response.json(openai_batch.to_json(self.state, batch))

    def list_batches(self, req: Request) -> Response:
        limit = _int_param(req, "limit", 20, 1, 100)
        with self.state.lock:
            batches = self.state.newest_first("openai")
            items = [openai_batch.to_json(self.state, b) for b in batches]
            page = _page([b.id for b in batches], items, req.query.get("after"), limit)
            return Response.json(page)

    # -- realtime --------------------------------------------------------------------------

    def realtime(self, req: Request) -> Response:
        body = req.json_object()
        endpoint = req.path
        fate = check(endpoint, body)
        with self.state.lock:
            self.state.counters.realtime_calls += 1
            if fate is None:
                body_hash = canonical_body_hash(body)
                attempt = self.state.realtime_attempt(body_hash)
                text = prompt_for(endpoint, body).last_user
                fate = decide(text, body_hash, attempt, self.state.plan, self.state.seed)
            now = int(self.state.clock.now())
        if fate.kind == "error":
            raise ApiError(fate.status, fate.message, param=fate.param, code=fate.code)
        # status0 / expire only mean something inside a batch: answer normally here.
        return Response.json(render(endpoint, body, now))

    def count_input_tokens(self, req: Request) -> Response:
        body = req.json_object()
        with self.state.lock:
            self.state.counters.token_count_calls += 1
        n = input_tokens(RESPONSES, body)
        return Response.json({"object": "response.input_tokens", "input_tokens": n})
