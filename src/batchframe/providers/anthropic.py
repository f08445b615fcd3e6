"""Anthropic Message Batches through the official ``anthropic`` SDK.

Requests travel inline in the create call (``{"custom_id", "params"}``); there is no upload
step. Results are streamed from the batch's ``results_url`` to a file and decoded line by line
into :data:`~batchframe.records.RESULT_SCHEMA` rows. Result types map onto row fates:

=============================================  =========  ====================================
result                                          fate       why
=============================================  =========  ====================================
``succeeded``                                   ok         an answer (may be a refusal or cut
                                                           off: ``stop_reason``)
``errored`` api/overloaded/timeout/rate limit   retry      the service's fault; sent again
``errored`` any other type (invalid request)    failed     the request's fault; kept as error
``expired``                                     retry      never ran within 24 h
``canceled``                                    retry      never ran; the runner makes it final
                                                           when the user asked for the cancel
anything else                                   retry      unknown to this version
=============================================  =========  ====================================

Token usage is normalised to the provider-neutral meaning used for OpenAI: ``input_tokens``
is every prompt token, of which ``cached_tokens`` were read from the prompt cache and
``cache_write_tokens`` were written to it (Anthropic reports the three separately).
"""

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
from .decode import Row, decode_files, integer, iter_lines, obj, write_stream

NAME = "anthropic"

# max_tokens is required by the Messages API. 1024 answers most labelling and extraction
# prompts; the estimate's upper bound uses it, and passing max_tokens= overrides it.
DEFAULT_MAX_TOKENS = 1024

# Anthropic's published limits: 100,000 requests or 256 MB per batch, whichever comes first.
# The byte budget keeps ~2 % headroom for the JSON envelope around the request lines (and the
# unstated MB-vs-MiB question).
MAX_REQUESTS = 100_000
MAX_BYTES = 250_000_000

# Under anthropic-version 2026-10-21 these are a 400 on every row (providers.md, section 0).
_SAMPLING = ("temperature", "top_p", "top_k")

# OpenAI-only keywords: each would fail every row of a Claude batch with a 400.
_OPENAI_ONLY = {
    "response_format": "use schema= or choices= for structured answers",
    "stop": "Claude calls it stop_sequences=[...]",
    "n": "Claude returns one answer per request; repeat the rows instead",
    "seed": "Claude has no seed parameter",
    "presence_penalty": "Claude has no presence_penalty",
    "frequency_penalty": "Claude has no frequency_penalty",
    "logit_bias": "Claude has no logit_bias",
    "logprobs": "Claude does not return log probabilities",
    "top_logprobs": "Claude does not return log probabilities",
    "reasoning_effort": "use output_config={'effort': 'low'|'medium'|'high'} or thinking=",
    "reasoning": "use output_config={'effort': ...} or thinking=",
    "user": "Claude takes metadata={'user_id': ...}",
}

# errored results whose error type means "try again"; other types are the request's fault.
_RETRYABLE_ERRORS = {"api_error", "overloaded_error", "timeout_error", "rate_limit_error"}

# A results file with fewer lines than the batch has requests is downloaded once more before
# the missing rows are treated as "no result" (and resubmitted).
_DOWNLOAD_TRIES = 2


class AnthropicProvider:
    name = NAME
    limits = Limits(max_requests=MAX_REQUESTS, max_bytes=MAX_BYTES)

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import anthropic

            try:
                client = anthropic.Anthropic(max_retries=4)
            except anthropic.AnthropicError as exc:  # e.g. a broken credentials profile
                raise ConfigurationError(
                    f"Could not set up the Anthropic client: {exc} Set ANTHROPIC_API_KEY, or "
                    "pass client=anthropic.Anthropic(...)."
                ) from exc
            credentials = getattr(client, "credentials", None)
            if not (client.api_key or getattr(client, "auth_token", None) or credentials):
                raise ConfigurationError(
                    "No Anthropic API key: set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a "
                    "compatible server), or pass client=anthropic.Anthropic(...). Use "
                    "dry_run=True to estimate without a key."
                )
            self._client = client
        return self._client

    # -- requests ---------------------------------------------------------------------------

    def prepare_spec(self, spec: RequestSpec) -> RequestSpec:
        params = dict(spec.params)
        for reserved in ("model", "messages", "system", "stream"):
            if reserved in params:
                hint = " Pass system= instead." if reserved == "system" else ""
                raise InputError(
                    f"{reserved}= is set by batchframe; remove it from the call.{hint}"
                )
        foreign = [k for k in _OPENAI_ONLY if k in params]
        if foreign:
            hints = "; ".join(f"{k}: {_OPENAI_ONLY[k]}" for k in foreign)
            raise InputError(
                f"{', '.join(foreign)} {'is' if len(foreign) == 1 else 'are'} OpenAI "
                f"parameter(s) that Claude rejects on every row ({hints}). Remove "
                f"{'it' if len(foreign) == 1 else 'them'}; nothing was sent."
            )
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
            raise InputError(
                f"max_tokens must be a whole number >= 1 for Claude, got {max_tokens!r}."
            )
        self._check_output_limit(spec.model, max_tokens)
        _check_thinking(params.get("thinking"), max_tokens)
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

    def _check_output_limit(self, model: str, max_tokens: int) -> None:
        """Refuse a max_tokens the model cannot give (every row would fail with a 400)."""
        from ..estimate.prices import lookup

        price = lookup(model)
        limit = price.max_output_tokens if price is not None else None
        if limit is None or max_tokens <= limit:
            return
        headers = getattr(self._client, "default_headers", None) or {}
        if "output-300k" in str(headers.get("anthropic-beta", "")):
            return  # the extended-output beta raises the cap in batches
        raise InputError(
            f"max_tokens={max_tokens:,} is more than {model} can produce ({limit:,} tokens); "
            "every row would fail. Lower max_tokens, or if your account has a higher limit "
            f"register it with batchframe.set_price({model!r}, max_output_tokens=...)."
        )

    def body_template(self, spec: RequestSpec) -> dict[str, Any]:
        body: dict[str, Any] = {"model": spec.model}
        messages = []
        for i, role in enumerate(spec.roles):
            if role == "system":
                body["system"] = jsonl.slot(part_name(i))  # Anthropic's top-level system
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

    def encode(
        self, spec: RequestSpec, custom_ids: pa.Array, parts: Sequence[pa.Array]
    ) -> pa.Array:
        line = {"custom_id": jsonl.slot("custom_id"), "params": self.body_template(spec)}
        columns = {"custom_id": custom_ids, **{part_name(i): p for i, p in enumerate(parts)}}
        return jsonl.fill(line, columns, len(custom_ids))

    # -- control plane ----------------------------------------------------------------------

    def upload(self, path: Path, name: str) -> str | None:
        return None  # requests travel inline in the create call

    def find_upload(self, name: str) -> str | None:
        return None

    def create(
        self, spec: RequestSpec, path: Path, file_id: str | None, tag: dict[str, str]
    ) -> str:
        requests = [orjson.loads(line) for line in iter_lines([path])]
        with map_sdk_errors(NAME, "create the message batch"):
            batch = self.client.messages.batches.create(requests=requests)
        return str(batch.id)

    def find_batch(
        self, tag: dict[str, str], *, since: float, total: int, claimed: frozenset[str]
    ) -> str | None:
        # Message batches carry no metadata: adopt the batch of the right size created closest
        # after our write-ahead record (allowing a minute of clock skew), never one already
        # owned by another shard. Only consulted after a crash between create and its record.
        best: tuple[float, str] | None = None
        with map_sdk_errors(NAME, "list message batches"):
            for batch in self.client.messages.batches.list(limit=100):
                created = _timestamp(batch.created_at)
                if created < since - 600:
                    break
                if batch.id in claimed or created < since - 60:
                    continue
                if _total(batch.request_counts) != total:
                    continue
                distance = abs(created - since)
                if best is None or distance < best[0]:
                    best = (distance, str(batch.id))
        return None if best is None else best[1]

    def retrieve(self, batch_id: str) -> RemoteStatus:
        with map_sdk_errors(NAME, "report the message batch status"):
            batch = self.client.messages.batches.retrieve(batch_id)
        return _status(batch)

    def cancel(self, batch_id: str) -> RemoteStatus:
        with map_sdk_errors(NAME, "cancel the message batch"):
            batch = self.client.messages.batches.cancel(batch_id)
        return _status(batch)

    def download(self, status: RemoteStatus, folder: Path) -> list[Path]:
        """Stream the results file to disk (a dropped stream raises; the runner retries)."""
        path = folder / f"results-{status.batch_id}.jsonl"
        if path.exists():
            return [path]
        attempt = folder / f"results-{status.batch_id}.download.jsonl"
        best = -1
        for _ in range(_DOWNLOAD_TRIES):
            with map_sdk_errors(NAME, "send the batch results"):
                decoder = self.client.messages.batches.results(status.batch_id)
                with contextlib.closing(decoder):
                    write_stream(decoder.http_response.iter_bytes(), attempt)
            lines = sum(1 for _ in iter_lines([attempt]))
            if lines > best:
                best = lines
                attempt.replace(path)
            if best >= status.total:
                break
        attempt.unlink(missing_ok=True)
        return [path]

    def decode(self, paths: Sequence[Path]) -> pa.Table:
        return decode_files(paths, decode_line, retry_code="unreadable_line")


def _check_thinking(thinking: Any, max_tokens: int) -> None:
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int) and not isinstance(budget, bool) and budget >= max_tokens:
        raise InputError(
            f"thinking budget_tokens={budget:,} must be less than max_tokens={max_tokens:,} "
            "(thinking counts towards max_tokens); raise max_tokens."
        )


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _total(counts: Any) -> int:
    return int(
        counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
    )


def _status(batch: Any) -> RemoteStatus:
    """A MessageBatch in neutral terms: in_progress/canceling are running, ended is terminal."""
    counts = batch.request_counts
    ended = batch.processing_status == "ended"
    outcome = "running"
    if ended:
        # A falsy check: re-serialised batches carry {} where the API sends null.
        outcome = "cancelled" if batch.cancel_initiated_at else "ended"
    return RemoteStatus(
        batch_id=str(batch.id),
        status=str(batch.processing_status),
        outcome=outcome,  # type: ignore[arg-type]
        total=_total(counts),
        succeeded=int(counts.succeeded),
        failed=int(counts.errored + counts.canceled + counts.expired),
        output_refs=("results",) if ended and batch.results_url else (),
        raw=batch.model_dump(mode="json", warnings=False),
    )


def decode_line(line: dict[str, Any]) -> Row:
    """One line of a Message Batches results file."""
    custom_id = line.get("custom_id")
    result = obj(line.get("result"))
    kind = result.get("type")
    if kind == "succeeded":
        return _succeeded(custom_id, obj(result.get("message")))
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
        return Row(
            custom_id,
            "retry",
            error_code="canceled",
            error_message="the batch was cancelled before this request ran",
        )
    if kind == "expired":
        return Row(
            custom_id,
            "retry",
            error_code="expired",
            error_message="the batch expired (24 h) before this request ran",
        )
    return Row(
        custom_id,
        "retry",
        error_code="unknown_result",
        error_message=f"unrecognised result type {kind!r}",
    )


def _succeeded(custom_id: Any, message: dict[str, Any]) -> Row:
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
    uncached = integer(usage.get("input_tokens"))
    read = integer(usage.get("cache_read_input_tokens"))
    written = integer(usage.get("cache_creation_input_tokens"))
    total = None if uncached is None else uncached + (read or 0) + (written or 0)
    return Row(
        custom_id,
        "ok",
        text=text,
        finish_reason=stop if isinstance(stop, str) else None,
        refusal=refusal,
        input_tokens=total,
        output_tokens=integer(usage.get("output_tokens")),
        cached_tokens=read,
        cache_write_tokens=written,
        reasoning_tokens=integer(obj(usage.get("output_tokens_details")).get("thinking_tokens")),
    )
