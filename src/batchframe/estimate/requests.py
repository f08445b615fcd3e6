"""Estimating a prepared job: its distinct requests counted, bounded and priced.

``estimate_prepared`` is what ``df.llm.batch(..., dry_run=True)`` returns. Input tokens are
counted offline (exact for OpenAI models with a published encoding, approximated for Claude
and unpublished OpenAI tokenizers). With ``exact=True`` the approximations are replaced by the
provider's own count-tokens endpoint, one call per distinct request, a few at a time:

* Claude: ``POST /v1/messages/count_tokens`` (free, rate limited). Anthropic documents it as
  an estimate that may include a few system tokens that are not billed.
* OpenAI models without a published tokenizer (gpt-6*): ``POST /v1/responses/input_tokens``.
  Chat requests are counted as the equivalent Responses input.

A pilot's measured usage refines the estimate: the mean output tokens per request becomes the
expected output, and an approximate input count is calibrated by the ratio of the pilot's
reported input tokens to the approximation for the same requests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd

from ..errors import InputError
from .actual import result_costs
from .estimate import Estimate, build_estimate, request_costs
from .prices import lookup
from .tokens import CLAUDE_RELATIVE_ERROR, TokenCount, base_model_name, count_chat_tokens

if TYPE_CHECKING:
    from ..prompts.build import Prepared

__all__ = [
    "COUNT_CONCURRENCY",
    "estimate_prepared",
    "max_output_of",
    "remote_token_counts",
    "request_bodies",
]

# Count-tokens calls in flight at once: the endpoints are rate limited per minute.
COUNT_CONCURRENCY = 8
_SAMPLES = 3
# Request-body keys Anthropic's count_tokens accepts; the rest (max_tokens, metadata...) would
# be a 400 there.
_ANTHROPIC_COUNT_KEYS = (
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "cache_control",
)
_RESPONSES_COUNT_KEYS = (
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "text",
    "reasoning",
    "parallel_tool_calls",
    "truncation",
)


def max_output_of(params: dict[str, Any]) -> int | None:
    """The per-request output cap a request body sets, if any."""
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _shards(prepared: Prepared, provider: Any, to_send: int) -> int:
    if to_send == 0:
        return 0
    limits = provider.limits
    text_bytes = prepared.text_bytes
    # Scale the text bytes to the requests still to send (a pilot takes a few out).
    text_bytes = math.ceil(text_bytes * to_send / max(prepared.n_requests, 1))
    return max(
        math.ceil(to_send / limits.max_requests), math.ceil(text_bytes / limits.max_bytes), 1
    )


def _samples(prepared: Prepared, keys: np.ndarray) -> tuple[str, ...]:
    parts = prepared.requests.take(keys[:_SAMPLES])
    return tuple(
        "\n".join(f"[{role}] {p[i].as_py()}" for role, p in zip(prepared.spec.roles, parts))
        for i in range(min(len(keys), _SAMPLES))
    )


def _count_tokens(prepared: Prepared) -> TokenCount:
    """Offline input tokens of every request, counted a batch of requests at a time."""
    counts: list[TokenCount] = []
    for batch in prepared.requests.batches():
        parts = [batch.column(i + 1) for i in range(len(prepared.spec.roles))]
        messages = list(zip(prepared.spec.roles, parts))
        counts.append(count_chat_tokens(prepared.spec.model, messages, n=batch.num_rows))
    if len(counts) == 1:
        return counts[0]
    per_request = np.concatenate([c.per_request for c in counts])
    return TokenCount(
        per_request=per_request,
        total=int(per_request.sum()),
        encoding=counts[0].encoding,
        exact=counts[0].exact,
        relative_error=counts[0].relative_error,
        method=counts[0].method,
    )


def _subset(count: TokenCount, mask: np.ndarray) -> TokenCount:
    per_request = count.per_request[mask]
    return TokenCount(
        per_request=per_request,
        total=int(per_request.sum()),
        encoding=count.encoding,
        exact=count.exact,
        relative_error=count.relative_error,
        method=count.method,
    )


# --- counting through the provider -----------------------------------------------------------


def request_bodies(prepared: Prepared, provider: Any, keys: np.ndarray) -> list[dict[str, Any]]:
    """The request bodies (what the realtime endpoint takes) of the requests ``keys``."""
    from ..prompts.build import custom_ids

    parts = prepared.requests.take(keys)
    lines = provider.encode(prepared.spec, custom_ids(keys), parts)
    out = []
    for line in lines.to_pylist():
        record = orjson.loads(line)
        out.append(record.get("params") or record.get("body") or {})
    return out


def _anthropic_counter(client: Any) -> Callable[[dict[str, Any]], int]:
    def count(body: dict[str, Any]) -> int:
        kwargs = {k: body[k] for k in _ANTHROPIC_COUNT_KEYS if k in body}
        return int(client.messages.count_tokens(**kwargs).input_tokens)

    return count


def _responses_input(body: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions body as the equivalent Responses count request."""
    if "input" in body:
        return {k: body[k] for k in _RESPONSES_COUNT_KEYS if k in body}
    out: dict[str, Any] = {"model": body["model"], "input": body.get("messages", [])}
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") == "json_schema":
        schema = rf.get("json_schema") or {}
        out["text"] = {"format": {"type": "json_schema", **schema}}
    return out


def _openai_counter(client: Any) -> Callable[[dict[str, Any]], int]:
    def count(body: dict[str, Any]) -> int:
        return int(client.responses.input_tokens.count(**_responses_input(body)).input_tokens)

    return count


def remote_token_counts(
    prepared: Prepared,
    provider: Any,
    keys: np.ndarray,
    *,
    concurrency: int = COUNT_CONCURRENCY,
) -> TokenCount:
    """Input tokens of the requests ``keys`` from the provider's count-tokens endpoint.

    One call per distinct request (requests are already deduplicated), ``concurrency`` at a
    time. Needs the network and an API key; nothing is billed.
    """
    from ..providers.base import map_sdk_errors

    client = provider.client
    if provider.name == "anthropic":
        counter, method = _anthropic_counter(client), "Anthropic count_tokens"
    else:
        counter, method = _openai_counter(client), "OpenAI responses/input_tokens"
    per_request = np.zeros(len(keys), dtype=np.int64)
    batch = 1024  # bodies built per round, so a huge job never holds every body at once

    def one(body: dict[str, Any]) -> int:
        with map_sdk_errors(provider.name, "count tokens"):
            return counter(body)

    workers = max(1, min(concurrency, len(keys)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(keys), batch):
            chunk = keys[start : start + batch]
            counts = list(pool.map(one, request_bodies(prepared, provider, chunk)))
            per_request[start : start + len(chunk)] = counts
    return TokenCount(
        per_request=per_request,
        total=int(per_request.sum()),
        encoding="provider",
        exact=True,
        relative_error=0.0,
        method=f"{method}, exact",
    )


# --- the estimate -------------------------------------------------------------------------------


def _calibrate(count: TokenCount, ratios: np.ndarray, n_pilot: int) -> TokenCount:
    """Scale an approximate count by the pilot's measured/approximated ratio."""
    factor = float(np.median(ratios)) if len(ratios) else 1.0
    if not math.isfinite(factor) or factor <= 0:
        return count
    spread = float(np.max(np.abs(ratios / factor - 1.0))) if len(ratios) else 0.0
    error = min(CLAUDE_RELATIVE_ERROR, max(0.02, spread))
    per_request = np.ceil(count.per_request * factor).astype(np.int64)
    method = f"{count.method.split(', ±')[0]}, calibrated ×{factor:.2f} on {n_pilot} pilot answers"
    return TokenCount(
        per_request=per_request,
        total=int(per_request.sum()),
        encoding=count.encoding,
        exact=False,
        relative_error=error,
        method=f"{method}, ±{error:.0%}".replace("%", " %"),
    )


def estimate_prepared(
    prepared: Prepared,
    provider: Any,
    *,
    exact: bool = False,
    concurrency: int = COUNT_CONCURRENCY,
    pilot_keys: Sequence[int] | np.ndarray | None = None,
    pilot_results: pd.DataFrame | None = None,
) -> Estimate:
    """The Estimate of a prepared job.

    ``pilot_keys`` are requests a pilot will answer (before it ran: their realtime cost is an
    upper bound). ``pilot_results`` are a pilot's results (RESULT_SCHEMA columns, keyed by
    ``key``): answered ones are taken out of the batch, and their usage refines the rest.
    """
    spec = prepared.spec
    n = prepared.n_requests
    model = spec.model
    counted = _count_tokens(prepared)
    max_out = max_output_of(spec.params)

    answered = np.zeros(0, dtype=np.int64)
    measured = None
    if pilot_results is not None and len(pilot_results):
        ok = pilot_results[pilot_results["fate"] == "ok"].drop_duplicates("key")
        if len(ok):
            measured = ok
            answered = np.unique(ok["key"].to_numpy(dtype=np.int64))
    planned = np.asarray(pilot_keys if pilot_keys is not None else [], dtype=np.int64)
    planned = np.setdiff1d(planned, answered)
    pilot = np.union1d(answered, planned)
    if len(pilot) and (pilot.min() < 0 or pilot.max() >= n):
        raise InputError(f"Pilot request keys must be between 0 and {n - 1}.")
    send = np.ones(n, dtype=bool)
    send[pilot] = False
    to_send = np.flatnonzero(send)

    notes: list[str] = []
    count = _subset(counted, send)
    expected = None
    expected_source = ""
    pilot_cost: float | None = 0.0
    if measured is not None:
        out_tokens = pd.to_numeric(measured["output_tokens"], errors="coerce").dropna()
        if len(out_tokens):
            expected = float(out_tokens.mean())
            expected_source = (
                f"pilot: mean {expected:,.1f} per request, max {int(out_tokens.max()):,}"
            )
        costs = result_costs(model, measured.assign(shard=-1))
        pilot_cost = None if costs is None else float(costs[0].sum())
        reported = pd.to_numeric(measured["input_tokens"], errors="coerce").to_numpy(float)
        approx = counted.per_request[measured["key"].to_numpy(dtype=np.int64)].astype(float)
        usable = np.isfinite(reported) & (approx > 0)
        if not counted.exact and not exact and usable.any():
            count = _calibrate(count, reported[usable] / approx[usable], int(usable.sum()))
        elif counted.exact and usable.any():
            diff = int(reported[usable].sum() - approx[usable].sum())
            if diff:
                notes.append(
                    f"The pilot's reported input tokens differ from the offline count by "
                    f"{diff:+,} over {int(usable.sum())} requests (chat framing varies by model)."
                )
    if len(planned) and pilot_cost is not None:
        # Not run yet: bound the pilot's realtime cost by max_tokens, like the batch.
        per_out = max_out
        if per_out is None:
            price = lookup(model)
            per_out = None if price is None else price.max_output_tokens
        bound = (
            None
            if per_out is None
            else request_costs(model, counted.per_request[planned], per_out, batch=False)
        )
        pilot_cost = None if bound is None else pilot_cost + float(bound.sum())

    if exact and not count.exact and len(to_send):
        count = remote_token_counts(prepared, provider, to_send, concurrency=concurrency)
        if base_model_name(model).startswith("claude"):
            notes.append(
                "Input tokens from Anthropic's count_tokens, which may include a few system "
                "tokens that are not billed."
            )
    elif exact and counted.exact:
        notes.append(f"exact=True: {counted.encoding} is {model}'s own tokenizer; no calls made.")

    return build_estimate(
        model=model,
        provider=spec.provider,
        rows=prepared.rows,
        requests=n,
        shards=_shards(prepared, provider, len(to_send)),
        max_output_tokens=max_out,
        samples=_samples(prepared, to_send if len(to_send) else np.arange(n)),
        token_count=count,
        expected_output_tokens=expected,
        expected_source=expected_source,
        pilot_requests=len(pilot),
        pilot_cost=pilot_cost,
        pilot_measured=len(planned) == 0 and measured is not None,
        extra_notes=notes,
    )
