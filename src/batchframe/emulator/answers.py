"""The deterministic answer to a prompt (the rule is spelled out in docs/emulator.md, "Answers").

Text: "echo: " + the last user message. Structured output or a forced tool: an instance of the
schema (schema.py) keyed by a hash of the last user message. A token limit cuts the text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from . import tokens
from .prompts import Prompt
from .schema import instance, stable_hash

REFUSAL_TEXT = "I'm sorry, but I can't help with that."
STRING_LIMIT = 64  # strings inside structured answers stay short

AnswerKind = Literal["text", "json", "tool", "refusal"]


@dataclass(frozen=True)
class Answer:
    kind: AnswerKind
    text: str
    """The content: plain text, JSON text (json/tool) or the refusal message."""
    tool: str | None
    truncated: bool
    input_tokens: int
    output_tokens: int

    def tool_input(self) -> Any:
        """The tool call's input as an object ({} when the text is not a JSON object)."""
        try:
            value = json.loads(self.text)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def structured_value(prompt: Prompt) -> Any:
    echo = "echo: " + prompt.last_user
    if prompt.schema is None:
        return {"answer": echo}
    return instance(prompt.schema, stable_hash(prompt.last_user), echo[:STRING_LIMIT])


def _malformed(text: str) -> str:
    """Invalid JSON: the first half of a valid document (objects cannot survive the cut)."""
    bad = text[: len(text) // 2]
    try:
        json.loads(bad)
    except ValueError:
        return bad
    return bad + "{"


def answer(prompt: Prompt) -> Answer:
    user = prompt.last_user
    input_tokens = tokens.prompt_tokens(prompt.texts, prompt.roles)
    if "EMU:refuse" in user:
        return Answer(
            "refusal", REFUSAL_TEXT, None, False, input_tokens, tokens.count(REFUSAL_TEXT)
        )
    kind: AnswerKind = "tool" if prompt.tool else ("json" if prompt.wants_json else "text")
    if "EMU:empty" in user:
        text = ""
    elif kind == "text":
        text = "echo: " + user
    else:
        text = compact(structured_value(prompt))
        if "EMU:malformed" in user:
            text = _malformed(text)
    truncated = False
    if prompt.max_tokens is not None and tokens.count(text) > prompt.max_tokens:
        text, truncated = tokens.truncate(text, prompt.max_tokens), True
    return Answer(kind, text, prompt.tool, truncated, input_tokens, tokens.count(text))
