"""Anthropic request checks and Message bodies, shared by batches and POST /v1/messages."""

from __future__ import annotations

import re
from typing import Any

from . import ids
from .answers import Answer, answer
from .errors import ApiError, anthropic_type
from .fates import SERVER_ERROR, Fate
from .prompts import from_anthropic

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
STRICT_VERSION = "2026-10-21"  # the version under which sampling parameters are gone
SAMPLING = ("temperature", "top_p", "top_k")


def check_params(params: dict[str, Any], prefix: str = "") -> None:
    """Fail the whole call (400) on what the API rejects at validation time."""
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, f"{prefix}model: Field required")
    max_tokens = params.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise ApiError(400, f"{prefix}max_tokens: Field required (an integer >= 1)")
    if max_tokens < 1:
        raise ApiError(400, f"{prefix}max_tokens: Input should be greater than or equal to 1")


def check_row(params: dict[str, Any], version: str) -> Fate | None:
    """The per-request error (errored result) for a request that passed `check_params`."""
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        return Fate("error", 400, "messages: Field required")
    if version == STRICT_VERSION:
        for name in SAMPLING:
            if name in params:
                return Fate(
                    "error",
                    400,
                    f"{name}: Extra inputs are not permitted (removed in anthropic-version "
                    f"{STRICT_VERSION})",
                )
    if params.get("stream"):
        return Fate("error", 400, "stream: streaming is not supported by the emulator")
    return None


def for_anthropic(fate: Fate) -> Fate:
    """Anthropic has no status-0 rows; they surface as api_error."""
    return SERVER_ERROR if fate.kind == "status0" else fate


def error_object(fate: Fate) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": anthropic_type(fate.status), "message": fate.message},
        "request_id": ids.anthropic_request_id(),
    }


def message(params: dict[str, Any], *, service_tier: str) -> dict[str, Any]:
    return message_body(params, answer(from_anthropic(params)), service_tier=service_tier)


def message_body(params: dict[str, Any], ans: Answer, *, service_tier: str) -> dict[str, Any]:
    content: list[dict[str, Any]]
    stop_details = None
    if ans.kind == "refusal":
        content, stop = [], "refusal"
        stop_details = {"type": "refusal", "category": None, "explanation": None}
    elif ans.kind == "tool":
        block = {"type": "tool_use", "id": ids.tool_use_id(), "name": ans.tool}
        content, stop = [{**block, "input": ans.tool_input()}], "tool_use"
    else:
        content, stop = [{"type": "text", "text": ans.text}], "end_turn"
    if ans.truncated:
        stop = "max_tokens"
    return {
        "id": ids.message_id(),
        "type": "message",
        "role": "assistant",
        "model": params["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "stop_details": stop_details,
        "usage": {
            "input_tokens": ans.input_tokens,
            "output_tokens": ans.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "service_tier": service_tier,
        },
    }
