"""Token counting: exact offline encodings, chat overhead, dedup, model mapping, Claude."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import math
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchframe.errors import ConfigurationError, InputError
from batchframe.estimate import tokens
from batchframe.estimate.tokens import (
    CLAUDE_MESSAGE_OVERHEAD,
    CLAUDE_REQUEST_OVERHEAD,
    claude_token_factor,
    count_chat_tokens,
    encoding_for_model,
    get_encoding,
    text_token_counts,
)

PROBES = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve façade, 日本語のテキスト, 한국어, emoji 😀🎉👩‍👩‍👧",
    "  leading and trailing  \r\nCRLF line\r\n\ttab\n\n\nblank lines   ",
    "def f(x):\n    return {'a': [x ** 2 for x in range(10)]}  # code\n",
    "3.14159 1,234,567 0xDEADBEEF 2026-11-23 1e-9 -42",
    "user text containing <|endoftext|> and <|endofprompt|> literally",
    "",
    "I'll've they're WE'D Ünïcödé ALLCAPS camelCaseWord snake_case_word",
]


class NetworkAttempted(AssertionError):
    pass


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No network: every socket connect or DNS lookup fails the test.

    Also points tiktoken at an empty cache directory and an unroutable proxy, and drops the
    encodings built so far, so get_encoding must build them again inside the guard.
    """

    def refuse(*args: object, **kwargs: object) -> None:
        raise NetworkAttempted(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://192.0.2.1:9")  # TEST-NET-1: never routable
    get_encoding.cache_clear()
    yield cache
    get_encoding.cache_clear()


def test_the_guard_really_blocks_the_network(offline: Path) -> None:
    with pytest.raises(NetworkAttempted):
        socket.create_connection(("example.com", 443), timeout=1)


@pytest.mark.parametrize(
    ("name", "ids"), [("o200k_base", [24912, 2375]), ("cl100k_base", [15339, 1917])]
)
def test_offline_encoding_gives_known_ids(offline: Path, name: str, ids: list[int]) -> None:
    enc = get_encoding(name)
    assert enc.name == name
    assert enc.encode_ordinary("hello world") == ids
    # Nothing was written to (or needed from) tiktoken's cache, and its setting is untouched.
    assert list(offline.iterdir()) == []


# Literal ids (identical from tiktoken fed the bundled file and from bpe-openai, 2026-11-23).
KNOWN_IDS = {
    "o200k_base": {
        "Café naïve 日本語 😀": [34, 103112, 153475, 737, 17428, 40909, 88038],
        "Price: $19.99 (€17,50)": [7417, 25, 548, 858, 13, 2058, 172769, 1422, 11, 1434, 8],
        "<|endoftext|>": [27, 91, 419, 1440, 919, 91, 29],
    },
    "cl100k_base": {
        "Café naïve 日本語 😀": [34, 2642, 978, 95980, 588, 76502, 22656, 45918, 252, 91416],
        "Price: $19.99 (€17,50)": [7117, 25, 400, 777, 13, 1484, 320, 15406, 1114, 11, 1135, 8],
        "<|endoftext|>": [27, 91, 8862, 728, 428, 91, 29],
    },
}


@pytest.mark.parametrize(
    ("name", "text", "ids"),
    [(name, text, ids) for name, table in KNOWN_IDS.items() for text, ids in table.items()],
)
def test_offline_encoding_gives_known_ids_for_odd_text(
    offline: Path, name: str, text: str, ids: list[int]
) -> None:
    enc = get_encoding(name)
    assert enc.encode_ordinary(text) == ids
    assert enc.decode(ids) == text
    assert text_token_counts([text], name)[0] == len(ids)


def test_get_encoding_is_cached_and_rejects_unknown_names() -> None:
    assert get_encoding("o200k_base") is get_encoding("o200k_base")
    with pytest.raises(ConfigurationError, match="o200k_base"):
        get_encoding("p50k_base")


# bpe_openai's own loader uses a deprecated importlib.resources call; not ours to fix.
@pytest.mark.filterwarnings("ignore:open_binary is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_ids_match_bpe_openai(offline: Path, name: str) -> None:
    import bpe_openai

    theirs = bpe_openai.get_encoding(name)
    ours = get_encoding(name)
    for text in PROBES:
        assert ours.encode_ordinary(text) == theirs.encode(text, disallowed_special=()), text


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_matches_tiktokens_own_definition(offline: Path, name: str) -> None:
    """tiktoken's constructor, fed the bundled file via its cache, equals our Encoding.

    tiktoken verifies the file's SHA-256 and supplies its own split pattern and special
    tokens, so this catches a changed vocabulary and drifted constants alike.
    """
    from tiktoken_ext import openai_public

    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    spec = importlib.util.find_spec("bpe_openai")
    assert spec is not None and spec.origin is not None
    package = Path(spec.origin).parent
    raw = gzip.decompress((package / "data" / f"{name}.tiktoken.gz").read_bytes())
    (offline / hashlib.sha1(url.encode()).hexdigest()).write_bytes(raw)

    reference = getattr(openai_public, name)()
    ours = get_encoding(name)
    assert ours._pat_str == reference["pat_str"]
    assert ours._special_tokens == reference["special_tokens"]
    assert ours._mergeable_ranks == reference["mergeable_ranks"]


def test_special_token_text_counts_as_plain_text() -> None:
    counts = text_token_counts(["<|endoftext|>"], "o200k_base")
    assert counts[0] > 1  # a literal string, not the single special token 199999


def test_one_system_one_user_is_content_plus_eleven() -> None:
    enc = get_encoding("o200k_base")
    system, users = "Answer with one word.", ["Great product!", "Awful.", ""]
    count = count_chat_tokens("gpt-4o-mini", [("system", [system]), ("user", users)])
    expected = [len(enc.encode(system)) + len(enc.encode(u)) + 11 for u in users]
    assert count.per_request.tolist() == expected
    assert count.per_request.dtype == np.int64
    assert count.total == sum(expected)
    assert (count.encoding, count.exact, count.relative_error) == ("o200k_base", True, 0.0)
    assert count.method == "o200k_base, exact"


def test_shared_content_broadcasts_like_a_repeated_one() -> None:
    users = ["a", "bb", "a"]
    shared = count_chat_tokens("gpt-4.1", [("system", "Be brief."), ("user", users)])
    repeated = count_chat_tokens("gpt-4.1", [("system", ["Be brief."] * 3), ("user", users)])
    assert shared.per_request.tolist() == repeated.per_request.tolist()
    only_shared = count_chat_tokens("gpt-4.1", [("user", ["hi"])], n=4)
    assert only_shared.requests == 4
    assert len(set(only_shared.per_request.tolist())) == 1


def test_input_types_agree() -> None:
    values = ["x y", None, "zz", "x y", "ünï"]
    as_list = text_token_counts(values)
    variants = [
        pd.Series(values, dtype=object),
        pd.Series(values, dtype="string[pyarrow]"),
        pd.Series(values, dtype=pd.ArrowDtype(pa.large_string())),
        pa.array(values),
        pa.chunked_array([pa.array(values[:2]), pa.array(values[2:])]),
        np.array(values, dtype=object),
    ]
    for variant in variants:
        assert text_token_counts(variant).tolist() == as_list.tolist(), type(variant)
    assert as_list[1] == 0  # null content counts nothing


def test_bad_inputs_are_input_errors() -> None:
    with pytest.raises(InputError, match="lengths"):
        count_chat_tokens("gpt-4o", [("system", ["a", "b"]), ("user", ["a", "b", "c"])])
    with pytest.raises(InputError, match="strings"):
        count_chat_tokens("gpt-4o", [("user", [1, 2])])
    with pytest.raises(InputError, match="n=5"):
        count_chat_tokens("gpt-4o", [("user", ["a", "b"])], n=5)
    with pytest.raises(InputError):
        count_chat_tokens("gpt-4o", [])


def _naive(model: str, messages: list[tuple[str, list[str | None]]]) -> list[int]:
    enc = get_encoding(encoding_for_model(model)[0])
    n = max(len(c) for _, c in messages)
    totals = []
    for i in range(n):
        total = 3
        for role, contents in messages:
            text = contents[0] if len(contents) == 1 else contents[i]
            total += 3 + len(enc.encode_ordinary(role)) + len(enc.encode_ordinary(text or ""))
        totals.append(total)
    return totals


_texts = st.lists(
    st.one_of(st.none(), st.sampled_from(["", "hello", "héllo 世界", "a\r\nb"]), st.text()),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(users=_texts, model=st.sampled_from(["gpt-4o-mini", "gpt-3.5-turbo", "gpt-6-sol"]))
def test_dedup_matches_a_naive_loop(users: list[str | None], model: str) -> None:
    messages: list[tuple[str, list[str | None]]] = [("system", ["Be terse."]), ("user", users)]
    count = count_chat_tokens(model, messages)  # type: ignore[arg-type]
    assert count.per_request.tolist() == _naive(model, messages)


def test_many_unique_strings_use_threads_and_chunks_correctly() -> None:
    # More unique strings than one encoding chunk (65,536), so the threaded, chunked path
    # runs end to end; the duplicates check the gather.
    texts = [f"row {i} é {i % 7}" for i in range(70_000)] + ["row 5 é 5"] * 10
    counts = text_token_counts(pa.array(texts), "cl100k_base")
    enc = get_encoding("cl100k_base")
    sample = [0, 1, 65_535, 65_536, 69_999, 70_005]
    assert [counts[i] for i in sample] == [len(enc.encode_ordinary(texts[i])) for i in sample]
    assert counts[-1] == counts[5]


@pytest.mark.parametrize(
    ("model", "encoding", "exact"),
    [
        ("gpt-4o", "o200k_base", True),
        ("gpt-4o-mini-2024-07-18", "o200k_base", True),
        ("chatgpt-4o-latest", "o200k_base", True),
        ("gpt-4.1-nano", "o200k_base", True),
        ("gpt-4.5-preview", "o200k_base", True),
        ("o1", "o200k_base", True),
        ("o3-mini", "o200k_base", True),
        ("o4-mini-2025-04-16", "o200k_base", True),
        ("gpt-5", "o200k_base", True),
        ("gpt-5.4-mini", "o200k_base", True),
        ("gpt-5.6-sol", "o200k_base", True),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base", True),
        ("gpt-4", "cl100k_base", True),
        ("gpt-4-0613", "cl100k_base", True),
        ("gpt-4-turbo", "cl100k_base", True),
        ("gpt-3.5-turbo", "cl100k_base", True),
        ("text-embedding-3-small", "cl100k_base", True),
        ("text-embedding-ada-002", "cl100k_base", True),
        ("gpt-6-sol", "o200k_base", False),
        ("gpt-6.1-terra", "o200k_base", False),
        ("some-new-model", "o200k_base", False),
        ("o10-preview", "o200k_base", False),
        ("claude-sonnet-5-5", "o200k_base", False),
        ("claude-3-5-haiku-20241022", "o200k_base", False),
    ],
)
def test_encoding_for_model(model: str, encoding: str, exact: bool) -> None:
    assert encoding_for_model(model) == (encoding, exact)


@pytest.mark.parametrize(
    ("model", "factor"),
    [
        ("claude-3-5-sonnet-20241022", 1.0),
        ("claude-3-haiku-20240307", 1.0),
        ("claude-sonnet-4-20250514", 1.0),
        ("claude-opus-4-1", 1.0),
        ("claude-opus-4-6", 1.0),
        ("claude-sonnet-4-6", 1.0),
        ("claude-haiku-4-5", 1.0),
        ("claude-opus-4-7", 1.3),
        ("claude-opus-4-8", 1.3),
        ("claude-opus-5", 1.3),
        ("claude-sonnet-5", 1.3),
        ("claude-sonnet-5-5", 1.3),
        ("claude-haiku-5-5", 1.3),
        ("claude-fable-5-1", 1.3),
        ("claude-mythos-5", 1.3),
        ("claude-next", 1.3),
    ],
)
def test_claude_factor_table(model: str, factor: float) -> None:
    assert claude_token_factor(model) == pytest.approx(factor)


def test_claude_count_is_scaled_and_labelled() -> None:
    system, users = "Answer with one word.", ["Great product!", "Terrible, never again."]
    count = count_chat_tokens("claude-sonnet-5-5", [("system", system), ("user", users)])
    o200k = text_token_counts([system])[0] + text_token_counts(users)
    framing = 2 * CLAUDE_MESSAGE_OVERHEAD + CLAUDE_REQUEST_OVERHEAD
    assert count.per_request.tolist() == [math.ceil(n * 1.3) + framing for n in o200k]
    assert count.exact is False
    assert count.relative_error == pytest.approx(0.15)
    assert count.method == "o200k_base × 1.30, ±15 %"

    older = count_chat_tokens("claude-sonnet-4-5", [("system", system), ("user", users)])
    assert older.per_request.tolist() == (o200k + framing).tolist()


def test_unknown_openai_model_is_an_estimate() -> None:
    count = count_chat_tokens("gpt-6-sol", [("user", ["hello world"])])
    assert count.per_request.tolist() == [2 + 3 + 1 + 3]
    assert count.exact is False
    assert count.relative_error > 0
    assert "±" in count.method


def test_module_leaves_tiktoken_cache_setting_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/nonexistent/user/choice")
    tokens.get_encoding.cache_clear()
    get_encoding("cl100k_base")
    assert os.environ["TIKTOKEN_CACHE_DIR"] == "/nonexistent/user/choice"
