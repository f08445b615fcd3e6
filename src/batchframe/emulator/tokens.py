"""Token counts with the o200k_base vocabulary that bpe_openai ships (works offline)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any

_lock = threading.Lock()
_encoding: Any = None
_loaded = False


def _get() -> Any:
    global _encoding, _loaded
    if not _loaded:
        try:
            import bpe_openai

            _encoding = bpe_openai.get_encoding("o200k_base")
        except Exception:  # the estimate below keeps the emulator usable without it
            _encoding = None
        _loaded = True
    return _encoding


def _estimate(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / 4)


def encode(text: str) -> list[int] | None:
    """Token ids, or None when the tokenizer refuses the text (too long, unavailable)."""
    with _lock:
        enc = _get()
        if enc is None:
            return None
        try:
            # encode_ordinary: special-token strings in user text are plain text here.
            return list(enc.encode_ordinary(text))
        except Exception:
            return None


def count(text: str) -> int:
    if not text:
        return 0
    ids = encode(text)
    return _estimate(text) if ids is None else len(ids)


def truncate(text: str, max_tokens: int) -> str:
    """The first `max_tokens` tokens of `text` (a partial UTF-8 character is dropped)."""
    if max_tokens <= 0:
        return ""
    ids = encode(text)
    if ids is None:
        return text.encode("utf-8")[: max_tokens * 4].decode("utf-8", errors="ignore")
    with _lock:
        raw: bytes = _get().decode_bytes(ids[:max_tokens])
    return raw.decode("utf-8", errors="ignore")


def prompt_tokens(texts: Iterable[str], roles: Iterable[str] = ()) -> int:
    """The cookbook rule: each message costs 3 + its role + its text, the reply primer 3.

    Anthropic prompts carry no roles here: its count is only an estimate anyway.
    """
    items = list(texts)
    framing = sum(count(r) for r in roles)
    return sum(count(t) for t in items) + framing + 3 * len(items) + 3
