"""Token counts for batch requests, offline and vectorised.

OpenAI counts are exact: the real tiktoken BPE, built from the vocabularies that the
``bpe-openai`` wheel ships (tiktoken would download them, and there may be no internet).
Claude counts are an approximation (no public tokenizer): o200k_base × a per-generation
factor, reported with a ± band.

A batch job has the same message structure for every request, so messages arrive as
``(role, contents)`` pairs where ``contents`` holds one string per request (or a single string
shared by all). Identical contents are encoded once; unique strings are encoded in bounded
chunks across threads and the lengths are gathered back with numpy.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib.util
import math
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import tiktoken

from batchframe.errors import ConfigurationError, InputError

__all__ = [
    "CHAT_MESSAGE_OVERHEAD",
    "CHAT_REPLY_PRIMER",
    "CLAUDE_MESSAGE_OVERHEAD",
    "CLAUDE_REQUEST_OVERHEAD",
    "SUPPORTED_ENCODINGS",
    "Contents",
    "TokenCount",
    "claude_token_factor",
    "count_chat_tokens",
    "encoding_for_model",
    "get_encoding",
    "text_token_counts",
]

Contents: TypeAlias = "pa.Array | pa.ChunkedArray | pd.Series | Sequence[str | None] | np.ndarray"

# --- encodings ---------------------------------------------------------------------------------

# Split patterns and special tokens, copied from tiktoken_ext/openai_public.py (tiktoken 0.14).
# tests/test_tokens.py checks them against tiktoken's own constructors, fed our vocabulary
# through a private TIKTOKEN_CACHE_DIR, so a tiktoken upgrade that changes them fails loudly.
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


@dataclass(frozen=True)
class _EncodingSpec:
    pat_str: str
    special_tokens: dict[str, int]
    sha256: str  # tiktoken's expected_hash for the decompressed .tiktoken file


_SPECS: dict[str, _EncodingSpec] = {
    "o200k_base": _EncodingSpec(
        pat_str=_O200K_PAT,
        special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": _EncodingSpec(
        pat_str=_CL100K_PAT,
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_SPECS)


def _bundled_vocabulary(name: str) -> bytes:
    """The decompressed ``{name}.tiktoken`` file shipped inside the bpe-openai wheel.

    The package is located with find_spec instead of imported: importing bpe_openai builds
    every one of its tokenizers (over a second), and we only want its data file.
    """
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "Counting OpenAI tokens offline needs the 'bpe-openai' package, which ships the "
            "tokenizer vocabularies; install it with `pip install bpe-openai`."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.tiktoken.gz"
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise ConfigurationError(
            f"The {name} vocabulary bundled with bpe-openai is missing or damaged ({path}: "
            f"{exc}); reinstall it with `pip install --force-reinstall bpe-openai`."
        ) from exc
    if hashlib.sha256(raw).hexdigest() != _SPECS[name].sha256:
        # Same check tiktoken applies to its own download: a different vocabulary would give
        # plausible-looking but wrong counts, which is worse than an error.
        raise ConfigurationError(
            f"The {name} vocabulary bundled with bpe-openai ({path}) does not match the one "
            "tiktoken expects; install a bpe-openai version that ships the standard file."
        )
    return raw


def _parse_ranks(raw: bytes) -> dict[bytes, int]:
    # The .tiktoken format: one "base64(token) rank" pair per line (tiktoken.load does the same,
    # but only from a path or URL, and we have the bytes in memory).
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken ``Encoding`` called ``name`` (o200k_base or cl100k_base), built offline.

    The Encoding is constructed directly from the bundled ranks, so nothing is downloaded,
    no cache directory is written and the user's TIKTOKEN_CACHE_DIR is left alone.
    """
    spec = _SPECS.get(name)
    if spec is None:
        raise ConfigurationError(
            f"Unknown token encoding {name!r}; batchframe counts with "
            f"{' or '.join(SUPPORTED_ENCODINGS)}."
        )
    ranks = _parse_ranks(_bundled_vocabulary(name))
    return tiktoken.Encoding(
        name=name,
        pat_str=spec.pat_str,
        mergeable_ranks=ranks,
        special_tokens=dict(spec.special_tokens),
    )


# --- models ------------------------------------------------------------------------------------

# Dated suffixes providers append to pinned snapshots: -2024-07-18, -20241022, -0613.
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$")
_O200K_MODELS = re.compile(
    r"^(?:gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o[134])(?:[-.]|$)|^gpt-oss(?:-|$)"
)
_CL100K_MODELS = re.compile(r"^(?:gpt-4|gpt-3\.5|gpt-35|text-embedding-)")


def base_model_name(model: str) -> str:
    """``model`` lower-cased, without a fine-tune wrapper or a trailing snapshot date."""
    name = model.strip().lower()
    if name.startswith("ft:"):  # ft:gpt-4o-mini-2024-07-18:org:suffix:id
        name = name[3:].split(":", 1)[0]
    return _DATE_SUFFIX.sub("", name)


def encoding_for_model(model: str) -> tuple[str, bool]:
    """``(encoding name, exact)`` for counting ``model``'s tokens.

    exact=False means the model's own tokenizer is not public and the count is an estimate:
    GPT-6-era and unrecognised names fall back to o200k_base (OpenAI's newest published one),
    and Claude is approximated from o200k_base (see :func:`claude_token_factor`).
    """
    name = base_model_name(model)
    if name.startswith("claude"):
        return "o200k_base", False
    if _O200K_MODELS.match(name):
        # gpt-oss uses o200k_harmony, which is o200k_base plus chat-format specials: plain
        # text encodes to the same ids.
        return "o200k_base", True
    if _CL100K_MODELS.match(name):
        return "cl100k_base", True
    return "o200k_base", False


# Claude's tokenizers are not public. Anthropic's model notes say Opus 4.7 and later, Fable 5,
# Mythos 5 and Sonnet 5/5.5 use a newer tokenizer producing roughly 30 % more tokens than earlier
# Claude models for the same text (providers.md 4.3). Earlier Claude is treated as o200k-like
# (factor 1.0). Both are rough; the ± band below covers the spread, and it is stated, not
# measured against count_tokens (which needs the network).
CLAUDE_NEW_TOKENIZER_FACTOR = 1.30
CLAUDE_OLD_TOKENIZER_FACTOR = 1.0
CLAUDE_RELATIVE_ERROR = 0.15
# First (major, minor) version of each family on the newer tokenizer. Families not listed
# switch at version 5; families launched on the new tokenizer have (0, 0).
_CLAUDE_NEW_TOKENIZER_FROM: dict[str, tuple[int, int]] = {
    "opus": (4, 7),
    "sonnet": (5, 0),
    "haiku": (5, 0),
    "fable": (0, 0),
    "mythos": (0, 0),
}
# Messages API framing per message and per request. Anthropic publishes no formula; these
# mirror OpenAI's chat convention (3 per message, 3 to prime the reply) and are a few tokens
# against a ±15 % band.
CLAUDE_MESSAGE_OVERHEAD = 3
CLAUDE_REQUEST_OVERHEAD = 3
# Unpublished GPT-6-era tokenizers counted with o200k_base: the stated band (o200k_base has
# served every OpenAI generation since gpt-4o unchanged, so it is likely close).
UNKNOWN_OPENAI_RELATIVE_ERROR = 0.10


def claude_token_factor(model: str) -> float:
    """Multiplier from an o200k_base count to an estimated Claude count for ``model``."""
    parts = base_model_name(model).split("-")
    family = next((p for p in parts[1:] if p.isalpha() and p != "latest"), "")
    numbers = [int(p) for p in parts[1:] if p.isdigit() and len(p) <= 2]
    if not numbers and family not in ("fable", "mythos"):
        # An unparseable name is most likely a new model: the larger factor overestimates
        # the cost rather than hiding it.
        return CLAUDE_NEW_TOKENIZER_FACTOR
    version = [*numbers, 0, 0][:2]
    first_new = _CLAUDE_NEW_TOKENIZER_FROM.get(family, (5, 0))
    if tuple(version) >= first_new:
        return CLAUDE_NEW_TOKENIZER_FACTOR
    return CLAUDE_OLD_TOKENIZER_FACTOR


# --- counting ----------------------------------------------------------------------------------

# The long-standing OpenAI cookbook rule: every message costs 3 tokens of framing plus the tokens
# of its role and content, and the conversation 3 more to prime the reply.
CHAT_MESSAGE_OVERHEAD = 3
CHAT_REPLY_PRIMER = 3

# Unique strings encoded per round: bounds the token-id lists alive at once.
_CHUNK = 65_536
# Below this many unique strings a thread pool costs more than it saves.
_SERIAL_BELOW = 512


@dataclass(frozen=True, eq=False)
class TokenCount:
    """Input tokens per request and how they were counted.

    ``per_request`` is an int64 array with one total per request (framing included);
    ``relative_error`` is the stated ± band (0.0 when the tokenizer is the model's own).
    """

    per_request: np.ndarray
    total: int
    encoding: str
    exact: bool
    relative_error: float
    method: str

    @property
    def requests(self) -> int:
        return len(self.per_request)


# Unique strings as _factorize returns them: an Arrow array is converted to Python strings one
# chunk at a time, so a million unique values never exist as Python objects all at once.
_Uniques: TypeAlias = "list[str] | pa.Array"


def _factorize(contents: Contents) -> tuple[np.ndarray, _Uniques]:
    """``(codes, uniques)``: ``uniques[codes[i]]`` is element i; nulls get code -1."""
    if isinstance(contents, pd.Series | pd.Index) and isinstance(contents.dtype, pd.ArrowDtype):
        contents = pa.chunked_array([pa.array(contents)])
    if isinstance(contents, pa.Array | pa.ChunkedArray):
        if not (pa.types.is_string(contents.type) or pa.types.is_large_string(contents.type)):
            if pa.types.is_string_view(contents.type) or pa.types.is_null(contents.type):
                contents = contents.cast(pa.string())
            else:
                raise InputError(f"Token counting needs strings, got an Arrow {contents.type}.")
        if isinstance(contents, pa.ChunkedArray):
            contents = contents.combine_chunks()
        encoded = contents.dictionary_encode()
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        return codes.astype(np.int64, copy=False), encoded.dictionary
    values = contents if isinstance(contents, pd.Series) else np.asarray(contents, dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    unique_list = list(uniques)
    for value in unique_list:
        if not isinstance(value, str):
            raise InputError(
                f"Token counting needs strings, got {type(value).__name__} value {value!r}."
            )
    return np.asarray(codes, dtype=np.int64), unique_list


def _lengths(uniques: _Uniques, count: Callable[[str], int], threads: int) -> np.ndarray:
    """Token lengths of ``uniques``, computed in chunks, each split across ``threads`` threads.

    tiktoken releases the GIL while encoding, so threads scale. Each thread gets one slice
    of a chunk rather than one task per string: ``encode_ordinary_batch`` submits one future
    per string, which measured 3x slower than a plain loop on 2 cores. Only lengths are kept,
    never the token-id lists.
    """
    out = np.empty(len(uniques), dtype=np.int64)
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    try:
        for start in range(0, len(uniques), _CHUNK):
            stop = min(start + _CHUNK, len(uniques))
            texts = uniques[start:stop]
            if isinstance(texts, pa.Array):
                texts = texts.to_pylist()

            def run(lo: int, hi: int, texts: list[str] = texts, base: int = start) -> None:
                out[base + lo : base + hi] = [count(text) for text in texts[lo:hi]]

            if pool is None or len(texts) < _SERIAL_BELOW:
                run(0, len(texts))
                continue
            step = math.ceil(len(texts) / threads)
            bounds = [(lo, min(lo + step, len(texts))) for lo in range(0, len(texts), step)]
            list(pool.map(lambda b: run(*b), bounds))
    finally:
        if pool is not None:
            pool.shutdown()
    return out


def _length_fn(enc: tiktoken.Encoding) -> Callable[[str], int]:
    encode = enc.encode_ordinary
    return lambda text: len(encode(text))


def text_token_counts(
    contents: Contents, encoding: str = "o200k_base", *, threads: int | None = None
) -> np.ndarray:
    """Tokens of each string in ``contents`` (int64; 0 for nulls); identical strings encoded once.

    Special-token text such as ``<|endoftext|>`` in user data counts as plain text, the way
    the API treats message content. ``threads`` defaults to the number of CPUs.
    """
    if isinstance(contents, str):
        raise InputError("Message contents must be a sequence of strings, not a single string.")
    codes, uniques = _factorize(contents)
    count = _length_fn(get_encoding(encoding))
    lengths = _lengths(uniques, count, threads or os.cpu_count() or 1)
    # A trailing 0 for the null code: -1 indexes the last element.
    return np.append(lengths, 0)[codes]


def _request_count(messages: Sequence[tuple[str, Contents]], n: int | None) -> int:
    sizes = {len(contents) for _, contents in messages}
    per_request = sizes - {1}
    if len(per_request) > 1:
        raise InputError(
            "Every message must hold one content per request (or one shared by all); got "
            f"lengths {sorted(sizes)}."
        )
    if n is None:
        return per_request.pop() if per_request else 1
    if per_request and per_request != {n}:
        raise InputError(f"Message contents have {per_request.pop()} elements but n={n}.")
    return n


def count_chat_tokens(
    model: str,
    messages: Sequence[tuple[str, Contents]],
    *,
    n: int | None = None,
    threads: int | None = None,
) -> TokenCount:
    """Input tokens of ``n`` chat requests sharing one message structure.

    ``messages`` is a list of ``(role, contents)``; ``contents`` holds one string per request,
    or a single string meaning "the same in every request" (encoded once). ``n`` is the number
    of requests; it is needed only when every message is shared. Null contents count 0.

    OpenAI: 3 + tokens(role) + tokens(content) per message, plus 3 to prime the reply.
    Claude: ceil(o200k_base content tokens × :func:`claude_token_factor`) plus
    CLAUDE_MESSAGE_OVERHEAD per message and CLAUDE_REQUEST_OVERHEAD per request.
    """
    if not messages:
        raise InputError("A request needs at least one message to count tokens for.")
    # A bare string is one shared content, not a sequence of characters.
    messages = [(role, [c] if isinstance(c, str) else c) for role, c in messages]
    requests = _request_count(messages, n)
    encoding, exact = encoding_for_model(model)
    enc = get_encoding(encoding)
    content = np.zeros(requests, dtype=np.int64)
    framing = 0
    for role, contents in messages:
        # Shared contents (length 1) are encoded once and broadcast.
        lengths = text_token_counts(contents, encoding, threads=threads)
        content += int(lengths[0]) if len(lengths) == 1 else lengths
        framing += CHAT_MESSAGE_OVERHEAD + len(enc.encode_ordinary(role))

    if base_model_name(model).startswith("claude"):
        factor = claude_token_factor(model)
        scaled = np.ceil(content * factor).astype(np.int64)
        per_request = scaled + CLAUDE_MESSAGE_OVERHEAD * len(messages) + CLAUDE_REQUEST_OVERHEAD
        error = CLAUDE_RELATIVE_ERROR
        method = f"{encoding} × {factor:.2f}, ±{error:.0%}".replace("%", " %")
    else:
        per_request = content + framing + CHAT_REPLY_PRIMER
        error = 0.0 if exact else UNKNOWN_OPENAI_RELATIVE_ERROR
        method = f"{encoding}, exact" if exact else f"{encoding}, ±{error:.0%}".replace("%", " %")
    return TokenCount(
        per_request=per_request,
        total=int(per_request.sum()),
        encoding=encoding,
        exact=exact,
        relative_error=error,
        method=method,
    )
