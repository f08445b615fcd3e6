"""Helpers shared by the emulator tests: request lines, uploads and clock stepping.

The emulator runs on a virtual clock. With PROCESSING = 100 seconds an OpenAI batch validates
during [0, 10), runs during [10, 90), finalizes during [90, 100) and completes at 100; an
Anthropic batch runs during [0, 100). Tests step the clock with `emu.advance()` and never
sleep; the few real milliseconds a test takes are far inside those windows.
"""

from __future__ import annotations

import json
from typing import Any

from batchframe.emulator import Emulator

PROCESSING = 100.0
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"
GPT = "gpt-4o-mini"
CLAUDE = "claude-sonnet-5-5"


def chat_line(
    custom_id: str,
    text: str,
    *,
    model: str = GPT,
    url: str = CHAT,
    system: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": text})
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": url,
        "body": {"model": model, "messages": messages, **extra},
    }


def jsonl(items: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(item) + "\n" for item in items).encode("utf-8")


def read_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def upload(client: Any, data: bytes, name: str = "input.jsonl") -> Any:
    return client.files.create(file=(name, data), purpose="batch")


def submit(client: Any, lines: list[dict[str, Any]], endpoint: str = CHAT, **kwargs: Any) -> Any:
    """Upload the lines and create a batch; returns the Batch as create answered it."""
    f = upload(client, jsonl(lines))
    return client.batches.create(
        input_file_id=f.id, endpoint=endpoint, completion_window="24h", **kwargs
    )


def finish(emu: Emulator, client: Any, batch_id: str, seconds: float = PROCESSING + 1) -> Any:
    emu.advance(seconds)
    return client.batches.retrieve(batch_id)


def run(emu: Emulator, client: Any, lines: list[dict[str, Any]], **kwargs: Any) -> Any:
    """Submit, move the clock past the end of processing, return the final Batch."""
    batch = submit(client, lines, **kwargs)
    return finish(emu, client, batch.id)


def file_lines(client: Any, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return read_jsonl(client.files.content(file_id).text)


def by_id(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {line["custom_id"]: line for line in lines}
    assert len(out) == len(lines), "a custom_id appears more than once"
    return out


def outcome(emu: Emulator, client: Any, lines: list[dict[str, Any]], **kwargs: Any) -> Any:
    """(final batch, output lines by custom_id, error lines by custom_id)."""
    batch = run(emu, client, lines, **kwargs)
    return (
        batch,
        by_id(file_lines(client, batch.output_file_id)),
        by_id(file_lines(client, batch.error_file_id)),
    )


def areq(custom_id: str, text: str, *, model: str = CLAUDE, **params: Any) -> dict[str, Any]:
    """One Anthropic batch request."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": params.pop("max_tokens", 64),
        "messages": [{"role": "user", "content": text}],
        **params,
    }
    return {"custom_id": custom_id, "params": body}


def arun(emu: Emulator, client: Any, requests: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
    """Create an Anthropic batch, let it end; (final batch, results by custom_id)."""
    batch = client.messages.batches.create(requests=requests)
    emu.advance(PROCESSING + 1)
    final = client.messages.batches.retrieve(batch.id)
    results = {r.custom_id: r for r in client.messages.batches.results(batch.id)}
    return final, results
