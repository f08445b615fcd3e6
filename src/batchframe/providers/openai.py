"""The OpenAI Batch API through the official ``openai`` SDK (files + batches)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from .. import jsonl
from ..errors import ConfigurationError, InputError
from ..records import RequestSpec, part_name
from .base import Limits, RemoteStatus, map_sdk_errors
from .decode import Row, decode_files, integer, obj, write_stream
from .openai_fast import FAST_PATH

NAME = "openai"
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
ENDPOINTS = (CHAT, RESPONSES)

# o-series and gpt-5 and later reason: no max_tokens, temperature fixed at 1.
_REASONING = re.compile(r"^(o[1-9]|gpt-5|gpt-6|gpt-7)")

_OUTCOMES = {
    "validating": "running",
    "in_progress": "running",
    "finalizing": "running",
    "cancelling": "running",
    "completed": "ended",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}
# Row-level HTTP statuses worth another attempt; everything else 4xx is the request's fault.
_RETRY_STATUS = {0, 408, 409, 429}


def is_reasoning_model(model: str) -> bool:
    return bool(_REASONING.match(model))


class OpenAIProvider:
    name = NAME
    limits = Limits(max_requests=50_000, max_bytes=200 * 1024 * 1024)

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import openai

            try:
                self._client = openai.OpenAI(max_retries=4)
            except openai.OpenAIError as exc:
                raise ConfigurationError(
                    "No OpenAI API key: set OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible "
                    "server), or pass client=openai.OpenAI(...). Use dry_run=True to estimate "
                    "without a key."
                ) from exc
        return self._client

    # -- requests ---------------------------------------------------------------------------

    def prepare_spec(self, spec: RequestSpec) -> RequestSpec:
        params = dict(spec.params)
        endpoint = spec.endpoint or CHAT
        if endpoint not in ENDPOINTS:
            raise InputError(
                f"endpoint={endpoint!r} is not supported; "
                f"use {CHAT!r} (the default) or {RESPONSES!r}."
            )
        for reserved in ("model", "messages", "input", "instructions", "stream"):
            if reserved in params:
                raise InputError(
                    f"{reserved}= is set by batchframe from the template and model; remove it."
                )
        if is_reasoning_model(spec.model):
            if "max_tokens" in params:
                # What the user means; the batch would otherwise fail row by row with a 400.
                params.setdefault("max_completion_tokens", params.pop("max_tokens"))
            temperature = params.get("temperature")
            if temperature is not None and temperature != 1:
                raise InputError(
                    f"{spec.model} is a reasoning model and only accepts temperature=1; "
                    f"remove temperature={temperature!r}."
                )
        if endpoint == RESPONSES:
            for old, new in (
                ("max_tokens", "max_output_tokens"),
                ("max_completion_tokens", "max_output_tokens"),
            ):
                if old in params:
                    params.setdefault(new, params.pop(old))
        for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
            value = params.get(key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InputError(f"{key} must be a whole number >= 1, got {value!r}.")
        return RequestSpec(
            provider=NAME,
            model=spec.model,
            roles=spec.roles,
            params=params,
            endpoint=endpoint,
            response_format=spec.response_format,
        )

    def body_template(self, spec: RequestSpec) -> dict[str, Any]:
        params = dict(spec.params)
        rf = spec.response_format
        if spec.endpoint == RESPONSES:
            items = [
                {"role": r, "content": jsonl.slot(part_name(i))} for i, r in enumerate(spec.roles)
            ]
            body: dict[str, Any] = {"model": spec.model, "input": items, **params}
            if rf is not None:
                body["text"] = {
                    "format": {
                        "type": "json_schema",
                        "name": rf.name,
                        "schema": rf.schema,
                        "strict": rf.strict,
                    }
                }
            return body
        messages = [
            {"role": r, "content": jsonl.slot(part_name(i))} for i, r in enumerate(spec.roles)
        ]
        body = {"model": spec.model, "messages": messages, **params}
        if rf is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": rf.name, "schema": rf.schema, "strict": rf.strict},
            }
        return body

    def encode(
        self, spec: RequestSpec, custom_ids: pa.Array, parts: Sequence[pa.Array]
    ) -> pa.Array:
        line = {
            "custom_id": jsonl.slot("custom_id"),
            "method": "POST",
            "url": spec.endpoint or CHAT,
            "body": self.body_template(spec),
        }
        columns = {"custom_id": custom_ids, **{part_name(i): p for i, p in enumerate(parts)}}
        return jsonl.fill(line, columns, len(custom_ids))

    # -- control plane ----------------------------------------------------------------------

    def upload(self, path: Path, name: str) -> str | None:
        with map_sdk_errors(NAME, "accept the upload"), path.open("rb") as stream:
            uploaded = self.client.files.create(file=(name, stream), purpose="batch")
        return str(uploaded.id)

    def find_upload(self, name: str) -> str | None:
        with map_sdk_errors(NAME, "list files"):
            for i, item in enumerate(self.client.files.list(purpose="batch", order="desc")):
                if item.filename == name:
                    return str(item.id)
                if i >= 2000:  # our upload is recent; don't page through an org's history
                    break
        return None

    def create(
        self, spec: RequestSpec, path: Path, file_id: str | None, tag: dict[str, str]
    ) -> str:
        assert file_id is not None, "OpenAI batches need an uploaded file"

        with map_sdk_errors(NAME, "create the batch"):
            batch = self.client.batches.create(
                input_file_id=file_id,
                endpoint=spec.endpoint or CHAT,
                completion_window="24h",
                metadata=tag,
            )
        return str(batch.id)

    def find_batch(
        self, tag: dict[str, str], *, since: float, total: int, claimed: frozenset[str]
    ) -> str | None:
        with map_sdk_errors(NAME, "list batches"):
            for batch in self.client.batches.list(limit=100):
                if batch.created_at < since - 600:
                    break
                metadata = batch.metadata or {}
                if batch.id not in claimed and all(metadata.get(k) == v for k, v in tag.items()):
                    return str(batch.id)
        return None

    def retrieve(self, batch_id: str) -> RemoteStatus:
        with map_sdk_errors(NAME, "report the batch status"):
            batch = self.client.batches.retrieve(batch_id)
        return _status(batch)

    def cancel(self, batch_id: str) -> RemoteStatus:
        with map_sdk_errors(NAME, "cancel the batch"):
            batch = self.client.batches.cancel(batch_id)
        return _status(batch)

    def download(self, status: RemoteStatus, folder: Path) -> list[Path]:
        paths = []
        for ref in status.output_refs:
            kind, file_id = ref.split(":", 1)
            path = folder / f"{kind}-{file_id}.jsonl"
            if not path.exists():
                with (
                    map_sdk_errors(NAME, "send the result file"),
                    self.client.files.with_streaming_response.content(file_id) as response,
                ):
                    write_stream(response.iter_bytes(), path)
            paths.append(path)
        return paths

    def decode(self, paths: Sequence[Path]) -> pa.Table:
        return decode_files(paths, decode_line, retry_code="unreadable_line", fast=FAST_PATH)


def _status(batch: Any) -> RemoteStatus:
    counts = batch.request_counts
    refs = []
    if batch.output_file_id:
        refs.append(f"output:{batch.output_file_id}")
    if batch.error_file_id:
        refs.append(f"error:{batch.error_file_id}")
    errors: list[tuple[str, str]] = []
    if batch.errors is not None and batch.errors.data:
        for e in batch.errors.data:
            where = f" (line {e.line})" if e.line else ""
            errors.append((e.code or "batch_failed", f"{e.message or 'the batch failed'}{where}"))
    outcome = _OUTCOMES.get(batch.status, "running")
    if outcome == "running" and batch.status not in _OUTCOMES:
        warnings.warn(
            f"Unknown OpenAI batch status {batch.status!r}; treating it as running.", stacklevel=2
        )
    return RemoteStatus(
        batch_id=str(batch.id),
        status=str(batch.status),
        outcome=outcome,  # type: ignore[arg-type]
        total=counts.total if counts else 0,
        succeeded=counts.completed if counts else 0,
        failed=counts.failed if counts else 0,
        output_refs=tuple(refs),
        errors=tuple(errors),
        raw=batch.model_dump(mode="json"),
    )


def decode_line(line: dict[str, Any]) -> Row:
    """One line of an OpenAI output or error file."""
    custom_id = line.get("custom_id")
    response = obj(line.get("response"))
    error = obj(line.get("error"))
    if not response:
        # The request never ran: batch_expired, batch_cancelled, or an unknown batch-level code.
        code = str(error.get("code") or "not_run")
        return Row(
            custom_id,
            "retry",
            error_code=code,
            error_message=str(error.get("message") or "the request was not run"),
        )
    status = integer(response.get("status_code"))
    body = obj(response.get("body"))
    if status == 200:
        return _success(custom_id, body)
    body_error = obj(body.get("error"))
    message = str(body_error.get("message") or "")
    if status == 0 or status is None:
        return Row(
            custom_id,
            "retry",
            error_code="empty_response",
            error_message=(
                "the provider returned an empty result line (status_code 0); it will be retried"
            ),
        )
    code = str(body_error.get("code") or body_error.get("type") or f"http_{status}")
    fate = "retry" if status in _RETRY_STATUS or status >= 500 else "failed"
    return Row(custom_id, fate, error_code=code, error_message=message or f"HTTP {status}")


def _success(custom_id: Any, body: dict[str, Any]) -> Row:
    usage = obj(body.get("usage"))
    # A Responses API body (its "object" says so, or it carries an output list).
    if body.get("object") == "response" or body.get("output") is not None:
        text, refusal, finish = _responses_text(body)
        return Row(
            custom_id,
            "ok",
            text=text,
            finish_reason=finish,
            refusal=refusal,
            input_tokens=integer(usage.get("input_tokens")),
            output_tokens=integer(usage.get("output_tokens")),
            cached_tokens=integer(obj(usage.get("input_tokens_details")).get("cached_tokens")),
            reasoning_tokens=integer(
                obj(usage.get("output_tokens_details")).get("reasoning_tokens")
            ),
        )
    choices = body.get("choices")
    choice = obj(choices[0]) if isinstance(choices, list) and choices else {}
    message = obj(choice.get("message"))
    text = message.get("content")
    if not isinstance(text, str):
        text = _tool_arguments(message.get("tool_calls"))
    refusal = message.get("refusal")
    return Row(
        custom_id,
        "ok",
        text=text,
        finish_reason=choice.get("finish_reason")
        if isinstance(choice.get("finish_reason"), str)
        else None,
        refusal=refusal if isinstance(refusal, str) else None,
        input_tokens=integer(usage.get("prompt_tokens")),
        output_tokens=integer(usage.get("completion_tokens")),
        cached_tokens=integer(obj(usage.get("prompt_tokens_details")).get("cached_tokens")),
        reasoning_tokens=integer(
            obj(usage.get("completion_tokens_details")).get("reasoning_tokens")
        ),
    )


def _responses_text(body: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[Any] = []
    for item in body.get("output") or []:
        item = obj(item)
        if item.get("type") == "message":
            for part in item.get("content") or []:
                part = obj(part)
                if part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif part.get("type") == "refusal":
                    refusals.append(str(part.get("refusal") or ""))
        elif item.get("type") == "function_call":
            calls.append({"function": {"arguments": item.get("arguments")}})
    text = "".join(texts) if texts else _tool_arguments(calls)
    finish = "stop"
    if body.get("status") == "incomplete":
        finish = str(obj(body.get("incomplete_details")).get("reason") or "incomplete")
    return text, ("".join(refusals) if refusals else None), finish


def _tool_arguments(calls: Any) -> str | None:
    if isinstance(calls, list) and calls:
        args = obj(obj(calls[0]).get("function")).get("arguments")
        return args if isinstance(args, str) else None
    return None
