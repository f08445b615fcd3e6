"""OpenAI request checks and response bodies, shared by the batch and the realtime paths."""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from typing import Any

from . import ids, tokens
from .answers import Answer, answer
from .errors import openai_envelope
from .fates import Fate
from .prompts import Prompt, embedding_inputs, from_chat, from_completions, from_responses

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"
COMPLETIONS = "/v1/completions"
MODERATIONS = "/v1/moderations"
ENDPOINTS = (
    RESPONSES,
    CHAT,
    EMBEDDINGS,
    COMPLETIONS,
    MODERATIONS,
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
)
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-6")
# The one field each runnable endpoint cannot do without.
_REQUIRED = {
    CHAT: "messages",
    RESPONSES: "input",
    EMBEDDINGS: "input",
    COMPLETIONS: "prompt",
    MODERATIONS: "input",
}


def _bad(message: str, param: str | None, code: str | None) -> Fate:
    return Fate("error", 400, message, param, code)


def is_reasoning(model: str) -> bool:
    return model.startswith(REASONING_PREFIXES)


def check(endpoint: str, body: dict[str, Any]) -> Fate | None:
    """The 400 the real endpoint would answer for this body, or None if it would run."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _bad("You must provide a model parameter.", "model", "missing_required_parameter")
    if endpoint not in _REQUIRED:
        return _bad(f"The emulator does not run {endpoint} requests.", None, "unsupported_endpoint")
    required = _REQUIRED[endpoint]
    if body.get(required) in (None, "", []):
        return _bad(
            f"Missing required parameter: '{required}'.", required, "missing_required_parameter"
        )
    if body.get("stream"):
        return _bad("Streaming is not supported by the emulator.", "stream", "unsupported_value")
    if endpoint in (CHAT, RESPONSES) and is_reasoning(model):
        if endpoint == CHAT and "max_tokens" in body:
            return _bad(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            )
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            return _bad(
                f"Unsupported value: 'temperature' does not support {temperature} with this "
                "model. Only the default (1) value is supported.",
                "temperature",
                "unsupported_value",
            )
    if endpoint == RESPONSES and "max_tokens" in body:
        return _bad("Unknown parameter: 'max_tokens'.", "max_tokens", "unknown_parameter")
    return None


def prompt_for(endpoint: str, body: dict[str, Any]) -> Prompt:
    if endpoint == CHAT:
        return from_chat(body)
    if endpoint == RESPONSES:
        return from_responses(body)
    if endpoint == COMPLETIONS:
        return from_completions(body)
    texts = tuple(x if isinstance(x, str) else "" for x in embedding_inputs(body))
    return Prompt(texts, "\n".join(texts))


def input_tokens(endpoint: str, body: dict[str, Any]) -> int:
    if endpoint in (EMBEDDINGS, MODERATIONS):
        return _embedding_tokens(body)
    prompt = prompt_for(endpoint, body)
    return tokens.prompt_tokens(prompt.texts, prompt.roles)


def error_body(fate: Fate) -> dict[str, Any]:
    return openai_envelope(fate.status, fate.message, fate.param, fate.code)


def render(endpoint: str, body: dict[str, Any], created: int) -> dict[str, Any]:
    """The 200 body for a request that passed `check`."""
    if endpoint == EMBEDDINGS:
        return embeddings_body(body)
    if endpoint == MODERATIONS:
        return moderations_body(body)
    ans = answer(prompt_for(endpoint, body))
    if endpoint == CHAT:
        return chat_body(body, ans, created)
    if endpoint == RESPONSES:
        return responses_body(body, ans, created)
    return completions_body(body, ans, created)


def usage_of(body: dict[str, Any]) -> tuple[int, int]:
    """(input, output) tokens of a rendered 200 body, whatever the endpoint."""
    usage = body.get("usage") or {}
    inp = usage.get("input_tokens", usage.get("prompt_tokens", 0))
    out = usage.get("output_tokens", usage.get("completion_tokens", 0))
    return int(inp or 0), int(out or 0)


def _chat_usage(ans: Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": ans.input_tokens,
        "completion_tokens": ans.output_tokens,
        "total_tokens": ans.input_tokens + ans.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_body(body: dict[str, Any], ans: Answer, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": ans.text,
        "refusal": None,
        "annotations": [],
    }
    if ans.kind == "refusal":
        message["content"], message["refusal"] = None, ans.text
    elif ans.kind == "tool":
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": ids.call_id(),
                "type": "function",
                "function": {"name": ans.tool, "arguments": ans.text},
            }
        ]
    # A forced tool call ends with "stop", as the real service does.
    finish = "length" if ans.truncated else "stop"
    return {
        "id": ids.chat_id(),
        "object": "chat.completion",
        "created": created,
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": _chat_usage(ans),
        "service_tier": "default",
        "system_fingerprint": None,
    }


def responses_body(body: dict[str, Any], ans: Answer, created: int) -> dict[str, Any]:
    status = "incomplete" if ans.truncated else "completed"
    item: dict[str, Any]
    if ans.kind == "tool":
        item = {
            "id": ids.output_item_id("fc"),
            "type": "function_call",
            "status": status,
            "call_id": ids.call_id(),
            "name": ans.tool,
            "arguments": ans.text,
        }
    else:
        part: dict[str, Any]
        if ans.kind == "refusal":
            part = {"type": "refusal", "refusal": ans.text}
        else:
            part = {"type": "output_text", "text": ans.text, "annotations": [], "logprobs": []}
        item = {
            "id": ids.output_item_id("msg"),
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [part],
        }
    text_cfg = body.get("text") if isinstance(body.get("text"), dict) else None
    return {
        "id": ids.response_id(),
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if ans.truncated else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": [item],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": text_cfg or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": ans.input_tokens,
            # openai 3.54 requires cache_write_tokens here (Response fails to parse without).
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": ans.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": ans.input_tokens + ans.output_tokens,
        },
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def completions_body(body: dict[str, Any], ans: Answer, created: int) -> dict[str, Any]:
    return {
        "id": ids.completion_id(),
        "object": "text_completion",
        "created": created,
        "model": body["model"],
        "choices": [
            {
                "text": ans.text,
                "index": 0,
                "logprobs": None,
                "finish_reason": "length" if ans.truncated else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": ans.input_tokens,
            "completion_tokens": ans.output_tokens,
            "total_tokens": ans.input_tokens + ans.output_tokens,
        },
    }


def _embedding_tokens(body: dict[str, Any]) -> int:
    total = 0
    for item in embedding_inputs(body):
        total += len(item) if isinstance(item, list) else tokens.count(str(item))
    return total


def embedding_vector(item: Any, dimensions: int) -> list[float]:
    """A unit vector seeded by the input (text, or token ids): same input, same vector."""
    key = item if isinstance(item, str) else ",".join(str(t) for t in item)
    rng = random.Random(hashlib.sha256(key.encode("utf-8")).hexdigest())
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 8) for x in raw]


def embeddings_body(body: dict[str, Any]) -> dict[str, Any]:
    model = str(body["model"])
    dims = body.get("dimensions")
    if not isinstance(dims, int) or dims <= 0:
        dims = 3072 if "large" in model else 1536
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(embedding_inputs(body)):
        vector = embedding_vector(item, dims)
        value: Any = vector
        if as_base64:
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": value})
    used = _embedding_tokens(body)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    }


def moderations_body(body: dict[str, Any]) -> dict[str, Any]:
    items = body.get("input")
    n = len(items) if isinstance(items, list) else 1
    result = {"flagged": False, "categories": {}, "category_scores": {}}
    return {"id": "modr-" + ids.request_id(), "model": body["model"], "results": [result] * n}
