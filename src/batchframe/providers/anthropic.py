"""Anthropic Message Batches through the official ``anthropic`` SDK."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from .. import jsonl
from ..errors import ConfigurationError, InputError
from ..records import RequestSpec, part_name
from .base import Limits, RemoteStatus, map_sdk_errors
from .decode import Row, decode_files, integer, obj, write_stream

NAME = "anthropic"

# max_tokens is required by the Messages API. 1024 answers most labelling and extraction
# prompts; the estimate's upper bound uses it, and passing max_tokens= overrides it.
DEFAULT_MAX_TOKENS = 1024

# Under anthropic-version 2026-10-21 these are a 400 on every row (providers.md, section 0).
_SAMPLING = ("temperature", "top_p", "top_k")

# errored results whose error type means "try again"; other types are the request's fault.
_RETRYABLE_ERRORS = {"api_error", "overloaded_error", "timeout_error", "rate_limit_error"}


class AnthropicProvider:
    name = NAME
    limits = Limits(max_requests=100_000, max_bytes=256 * 1024 * 1024)

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import anthropic

            self._client = anthropic.Anthropic(max_retries=4)
            if not (self._client.api_key or getattr(self._client, "auth_token", None)):
                raise ConfigurationError(
                    "No Anthropic API key: set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a "
                    "compatible server), or pass client=anthropic.Anthropic(...). Use "
                    "dry_run=True to estimate without a key."
                )
        return self._client

    # -- requests ---------------------------------------------------------------------------

    def prepare_spec(self, spec: RequestSpec) -> RequestSpec:
        params = dict(spec.params)
        for reserved in ("model", "messages", "system", "stream"):
            if reserved in params:
                hint = " Pass system= instead." if reserved == "system" else ""
                raise InputError(f"{reserved}= is set by batchframe; remove it from the call.{hint}")
        dropped = [k for k in _SAMPLING if k in params]
        if dropped:
            for key in dropped:
                params.pop(key)
            warnings.warn(
                f"Claude batch requests cannot carry {', '.join(dropped)} (the current API "
                "version rejects sampling parameters); batchframe left them out.",
                UserWarning,
                stacklevel=4,
            )
        for alias in ("max_completion_tokens", "max_output_tokens"):
            if alias in params:
                params.setdefault("max_tokens", params.pop(alias))
        params.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        max_tokens = params["max_tokens"]
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise InputError(f"max_tokens must be a whole number >= 1 for Claude, got {max_tokens!r}.")
        roles = spec.roles
        if "system" in roles[1:]:
            raise InputError(
                "Claude takes one system prompt, before the conversation; put the system "
                "message first (or use system=)."
            )
        conversation = roles[1:] if roles[0] == "system" else roles
        if not conversation or conversation[0] != "user":
            raise InputError("A Claude conversation must start with a user message.")
        return RequestSpec(
            provider=NAME,
            model=spec.model,
            roles=spec.roles,
            params=params,
            endpoint=None,
            response_format=spec.response_format,
        )

    def body_template(self, spec: RequestSpec) -> dict[str, Any]:
        body: dict[str, Any] = {"model": spec.model}
        messages = []
        for i, role in enumerate(spec.roles):
            if role == "system":
                body["system"] = jsonl.slot(part_name(i))
            else:
                messages.append({"role": role, "content": jsonl.slot(part_name(i))})
        body["messages"] = messages
        body.update(spec.params)
        rf = spec.response_format
        if rf is not None:
            config = dict(body.get("output_config") or {})
            config["format"] = {"type": "json_schema", "schema": rf.schema}
            body["output_config"] = config
        return body

    def encode(self, spec: RequestSpec, custom_ids: pa.Array, parts: Sequence[pa.Array]) -> pa.Array:
        line = {"custom_id": jsonl.slot("custom_id"), "params": self.body_template(spec)}
        columns = {"custom_id": custom_ids, **{part_name(i): p for i, p in enumerate(parts)}}
        return jsonl.fill(line, columns, len(custom_ids))

    # -- control plane ----------------------------------------------------------------------

    def upload(self, path: Path, name: str) -> str | None:
        return None  # requests travel inline in the create call

    def find_upload(self, name: str) -> str | None:
        return None

    def create(self, spec: RequestSpec, path: Path, file_id: str | None, tag: dict[str, str]) -> str:
        with path.open("rb") as stream:
            requests = [orjson.loads(line) for line in stream if line.strip()]
        with map_sdk_errors(NAME, "create the message batch"):
            batch = self.client.messages.batches.create(requests=requests)
        return str(batch.id)

    def find_batch(self, tag: dict[str, str], *, since: float, total: int) -> str | None:
        # Message batches carry no metadata: adopt the one batch of the right size created
        # since our write-ahead record. Keys are verified again when its results arrive.
        claimed = set(tag.get("claimed", "").split(","))
        with map_sdk_errors(NAME, "list message batches"):
            for batch in self.client.messages.batches.list(limit=100):
                created = _timestamp(batch.created_at)
                if created < since - 600:
                    break
                counts = batch.request_counts
                size = (
                    counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
                )
                if size == total and created >= since - 60 and batch.id not in claimed:
                    return str(batch.id)
        return None

    def retrieve(self, batch_id: str) -> RemoteStatus:
        with map_sdk_errors(NAME, "report the message batch status"):
            batch = self.client.messages.batches.retrieve(batch_id)
        return _status(batch)

    def cancel(self, batch_id: str) -> RemoteStatus:
        with map_sdk_errors(NAME, "cancel the message batch"):
            batch = self.client.messages.batches.cancel(batch_id)
        return _status(batch)

    def download(self, status: RemoteStatus, folder: Path) -> list[Path]:
        path = folder / f"results-{status.batch_id}.jsonl"
        if not path.exists():
            with map_sdk_errors(NAME, "send the batch results"):
                decoder = self.client.messages.batches.results(status.batch_id)
                with contextlib.closing(decoder):
                    write_stream(decoder.http_response.iter_bytes(), path)
        return [path]

    def decode(self, paths: Sequence[Path]) -> pa.Table:
        return decode_files(paths, decode_line, retry_code="unreadable_line")


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _status(batch: Any) -> RemoteStatus:
    counts = batch.request_counts
    total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
    ended = batch.processing_status == "ended"
    outcome = "running"
    if ended:
        outcome = "cancelled" if batch.cancel_initiated_at is not None else "ended"
    return RemoteStatus(
        batch_id=str(batch.id),
        status=str(batch.processing_status),
        outcome=outcome,  # type: ignore[arg-type]
        total=total,
        succeeded=counts.succeeded,
        failed=counts.errored + counts.canceled + counts.expired,
        output_refs=("results",) if ended and batch.results_url else (),
        raw=batch.model_dump(mode="json"),
    )


def decode_line(line: dict[str, Any]) -> Row:
    """One line of a Message Batches results file."""
    custom_id = line.get("custom_id")
    result = obj(line.get("result"))
    kind = result.get("type")
    if kind == "succeeded":
        message = obj(result.get("message"))
        usage = obj(message.get("usage"))
        texts = []
        tool_input = None
        for block in message.get("content") or []:
            block = obj(block)
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif block.get("type") == "tool_use" and tool_input is None:
                tool_input = orjson.dumps(block.get("input")).decode()
        stop = message.get("stop_reason")
        text = "".join(texts) if texts or tool_input is None else tool_input
        refusal = (text or "the model declined to answer") if stop == "refusal" else None
        return Row(
            custom_id,
            "ok",
            text=text,
            finish_reason=stop if isinstance(stop, str) else None,
            refusal=refusal,
            input_tokens=integer(usage.get("input_tokens")),
            output_tokens=integer(usage.get("output_tokens")),
            cached_tokens=integer(usage.get("cache_read_input_tokens")),
            cache_write_tokens=integer(usage.get("cache_creation_input_tokens")),
        )
    if kind == "errored":
        outer = obj(result.get("error"))
        inner = obj(outer.get("error")) or outer
        error_type = str(inner.get("type") or "api_error")
        fate = "retry" if error_type in _RETRYABLE_ERRORS else "failed"
        return Row(
            custom_id,
            fate,
            error_code=error_type,
            error_message=str(inner.get("message") or error_type),
        )
    if kind == "canceled":
        return Row(custom_id, "retry", error_code="canceled", error_message="the batch was cancelled before this request ran")
    if kind == "expired":
        return Row(custom_id, "retry", error_code="expired", error_message="the batch expired before this request ran")
    return Row(
        custom_id,
        "retry",
        error_code="unknown_result",
        error_message=f"unrecognised result type {kind!r}",
    )
