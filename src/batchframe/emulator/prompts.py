"""Read what a request asks for, whatever its wire format: texts, last user text, JSON wishes.

Only this module knows where chat, responses, completions and Anthropic bodies keep their
messages; answers.py works on the provider-neutral `Prompt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Prompt:
    texts: tuple[str, ...]
    """The text of every message (system prompt / instructions included), for token counts."""
    last_user: str
    """Text of the last user message: what the answer echoes and the triggers are read from."""
    wants_json: bool = False
    schema: Any = None
    """JSON schema the answer must conform to (None with wants_json: any JSON object)."""
    tool: str | None = None
    """Name of the single forced tool; the answer becomes that tool's input."""
    max_tokens: int | None = None
    roles: tuple[str, ...] = ()
    """OpenAI message roles: their tokens count as input too (the cookbook rule)."""


def _text_of(content: Any) -> str:
    """String content as is; the text parts of list content joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str) and part.get("type", "text") in (
                    "text",
                    "input_text",
                    "output_text",
                ):
                    parts.append(text)
        return "\n".join(parts)
    return ""


def _last_user(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _forced_tool(choice: Any, names: list[str], *, forced_type: str) -> str | None:
    if isinstance(choice, dict) and choice.get("type") == forced_type:
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
        return name if isinstance(name, str) else None
    # "required" (OpenAI) / {"type": "any"} (Anthropic) with one tool forces that tool.
    forced_any = choice == "required" or (isinstance(choice, dict) and choice.get("type") == "any")
    if forced_any and len(names) == 1:
        return names[0]
    return None


def _openai_tool_schemas(tools: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        nested = tool.get("function")  # chat nests the function; responses does not
        fn: dict[str, Any] = nested if isinstance(nested, dict) else tool
        if isinstance(fn.get("name"), str):
            out[fn["name"]] = fn.get("parameters") or {"type": "object", "properties": {}}
    return out


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def from_chat(body: dict[str, Any]) -> Prompt:
    messages = _list(body.get("messages"))
    texts = tuple(_text_of(m.get("content")) for m in messages if isinstance(m, dict))
    fmt = body.get("response_format")
    wants_json, schema = _openai_format(fmt, nested=True)
    tools = _openai_tool_schemas(body.get("tools"))
    tool = _forced_tool(body.get("tool_choice"), list(tools), forced_type="function")
    if tool is not None:
        wants_json, schema = True, tools.get(tool, {})
    max_tokens = _int_or_none(body.get("max_completion_tokens"))
    if max_tokens is None:
        max_tokens = _int_or_none(body.get("max_tokens"))
    roles = tuple(str(m.get("role") or "") for m in messages if isinstance(m, dict))
    return Prompt(texts, _last_user(messages), wants_json, schema, tool, max_tokens, roles)


def from_responses(body: dict[str, Any]) -> Prompt:
    raw = body.get("input")
    texts: list[str] = []
    roles: list[str] = []
    if isinstance(body.get("instructions"), str):
        texts.append(body["instructions"])
        roles.append("system")
    if isinstance(raw, str):
        texts.append(raw)
        roles.append("user")
        last_user = raw
    else:
        items = raw if isinstance(raw, list) else []
        for item in items:
            if isinstance(item, dict):
                texts.append(_text_of(item.get("content", item.get("output"))))
                roles.append(str(item.get("role") or ""))
        last_user = _last_user(items)
    text_cfg = body.get("text")
    fmt = text_cfg.get("format") if isinstance(text_cfg, dict) else None
    wants_json, schema = _openai_format(fmt, nested=False)
    tools = _openai_tool_schemas(body.get("tools"))
    tool = _forced_tool(body.get("tool_choice"), list(tools), forced_type="function")
    if tool is not None:
        wants_json, schema = True, tools.get(tool, {})
    max_tokens = _int_or_none(body.get("max_output_tokens"))
    return Prompt(tuple(texts), last_user, wants_json, schema, tool, max_tokens, tuple(roles))


def from_completions(body: dict[str, Any]) -> Prompt:
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        strings = [p for p in prompt if isinstance(p, str)]
        prompt = strings[-1] if strings else ""
    text = prompt if isinstance(prompt, str) else ""
    return Prompt((text,), text, max_tokens=_int_or_none(body.get("max_tokens")))


def from_anthropic(params: dict[str, Any]) -> Prompt:
    messages = _list(params.get("messages"))
    texts = [_text_of(m.get("content")) for m in messages if isinstance(m, dict)]
    system = params.get("system")
    if system:
        texts.insert(0, _text_of(system))
    wants_json, schema = False, None
    config = params.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else params.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        wants_json, schema = True, fmt.get("schema") or {}
    tools: dict[str, Any] = {}
    for t in _list(params.get("tools")):
        if isinstance(t, dict) and isinstance(t.get("name"), str):
            tools[t["name"]] = t.get("input_schema") or {"type": "object", "properties": {}}
    tool = _forced_tool(params.get("tool_choice"), list(tools), forced_type="tool")
    if tool is not None:
        wants_json, schema = True, tools.get(tool, {})
    return Prompt(
        tuple(texts),
        _last_user(messages),
        wants_json,
        schema,
        tool,
        _int_or_none(params.get("max_tokens")),
    )


def embedding_inputs(body: dict[str, Any]) -> list[Any]:
    """Embeddings `input`: a string, a list of strings, a token list or a list of token lists."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        return [raw]
    return list(raw) if isinstance(raw, list) else []


def _openai_format(fmt: Any, *, nested: bool) -> tuple[bool, Any]:
    """(wants_json, schema) from chat `response_format` (nested) or responses `text.format`."""
    if not isinstance(fmt, dict):
        return False, None
    if fmt.get("type") == "json_object":
        return True, None
    if fmt.get("type") == "json_schema":
        holder = fmt.get("json_schema") if nested else fmt
        schema = holder.get("schema") if isinstance(holder, dict) else None
        return True, schema or {}
    return False, None
