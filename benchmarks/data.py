"""Benchmark inputs, made deterministically and cached on disk (stdlib, numpy, pandas, pyarrow).

- a product catalog frame (sku, name, brand, category, price, stock, description): every row
  distinct, text with quotes, backslashes, accents and CJK so JSON escaping is exercised;
- OpenAI batch output and error files in the recorded format (the shape of real files: ids,
  request ids, full chat.completion bodies with usage details), shuffled, with answers, 400s,
  status_code 0 lines, 500s, a few duplicated lines and a few ids that were never sent.

The peers' scripts import this module from their own virtual environment, so it must not
import batchframe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TEMPLATE = (
    "Write a one-paragraph catalog description for {name} by {brand}.\n"
    "Category: {category}. SKU: {sku}. Price: ${price}. In stock: {stock}.\n"
    "Seller notes: {description}"
)
FIELDS = ("sku", "name", "brand", "category", "price", "stock", "description")
SYSTEM = "You write concise, factual product copy."
MODEL = "gpt-4o-mini"
MAX_TOKENS = 512  # above the emulator's echoed answers, so none is cut off

_WORDS = [
    "soft",
    "durable",
    "premium",
    "lightweight",
    "waterproof",
    "ergonomic",
    "classic",
    "compact",
    "wireless",
    "stainless",
    "organic",
    "handmade",
    "vintage",
    "modern",
    "portable",
    "rechargeable",
    "adjustable",
    "breathable",
    "cotton",
    "leather",
    "bamboo",
    "ceramic",
    "steel",
    "oak",
    "walnut",
    "glass",
    "silicone",
    "wool",
    "linen",
    "café",
    "naïve",
    "crème",
    "déjà-vu",
    '"pro"',
    '"max"',
    "5½-inch",
    "10\\20",
    "kitchen",
    "garden",
    "travel",
    "office",
    "outdoor",
    "studio",
    "everyday",
    "gift",
    "set",
    "of",
    "2",
    "with",
    "case",
    "and",
    "a",
    "spare",
    "part",
    "for",
    "daily",
    "use",
    "at",
    "home",
    "or",
    "work",
    "日本製",
    "한정판",
    "✓",
]
_BRANDS = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark & Sons",
    "Wayne's",
    "Müller",
    "東京堂",
    'The "Best" Co',
    "Back\\slash Ltd",
]
_CATEGORIES = [
    "Kitchen",
    "Garden",
    "Office",
    "Outdoor",
    "Toys",
    "Apparel",
    "Audio",
    "Home/Decor",
    "Tools",
    "Beauty",
]


def default_dir() -> Path:
    """Where inputs are cached: BENCH_DATA_DIR, else a folder in the system temp dir."""
    env = os.environ.get("BENCH_DATA_DIR")
    if env:
        return Path(env)
    import tempfile

    return Path(tempfile.gettempdir()) / "batchframe-bench-data"


def _column_of_words(rng: np.random.Generator, n: int, lo: int, hi: int) -> pa.Array:
    """n strings of lo..hi random words, joined by spaces, built columnar (no row loop)."""
    words = pa.array(_WORDS, pa.large_string())
    count = rng.integers(lo, hi + 1, size=n)
    picks = rng.integers(0, len(_WORDS), size=int(count.sum()))
    offsets = np.concatenate(([0], np.cumsum(count))).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), words.take(pa.array(picks)))
    import pyarrow.compute as pc

    return pc.binary_join(lists, pa.scalar(" ", pa.large_string()))


def catalog(n: int, seed: int = 0) -> pd.DataFrame:
    """The catalog frame: n distinct rows (the SKU makes every prompt unique)."""
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    text = pa.large_string()
    sku = pc.binary_join_element_wise(
        pa.scalar("SKU-", text),
        pc.cast(pa.array(np.arange(n) + 10_000_000), text),
        pa.scalar("", text),
    )
    name = pc.utf8_title(_column_of_words(rng, n, 2, 4))
    table = pa.table(
        {
            "sku": sku,
            "name": name,
            "brand": pa.array(
                np.array(_BRANDS, dtype=object)[rng.integers(0, len(_BRANDS), n)], pa.large_string()
            ),
            "category": pa.array(
                np.array(_CATEGORIES, dtype=object)[rng.integers(0, len(_CATEGORIES), n)],
                pa.large_string(),
            ),
            "price": pa.array(np.round(rng.uniform(1, 500, n), 2)),
            "stock": pa.array(rng.integers(0, 1000, n)),
            "description": _column_of_words(rng, n, 18, 40),
        }
    )
    return table.to_pandas(
        types_mapper=lambda t: (
            pd.StringDtype("pyarrow", na_value=np.nan) if pa.types.is_large_string(t) else None
        )
    )


def catalog_path(n: int, folder: Path | None = None) -> Path:
    folder = folder or default_dir()
    path = folder / f"catalog-{n}.parquet"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        pq.write_table(pa.Table.from_pandas(catalog(n), preserve_index=True), tmp)
        tmp.replace(path)
    return path


def load_catalog(n: int, folder: Path | None = None) -> pd.DataFrame:
    return pd.read_parquet(catalog_path(n, folder))


# -- result files ----------------------------------------------------------------------------

_ANSWERS = [
    "A sturdy, well-made piece for everyday use.",
    'Compact and light: the "travel" edition you wanted.',
    "Crafted from oak and steel; built to last — naïve café style.",
    "日本製の高品質な製品です。",
    'Backslash \\ and quotes " survive the round trip.',
]


def _ok_line(k: int, rnd: np.random.Generator) -> str:
    answer = _ANSWERS[k % len(_ANSWERS)] + f" (#{k})"
    body = {
        "id": f"chatcmpl-{k:012d}",
        "object": "chat.completion",
        "created": 1764743355,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": answer,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 80 + k % 40,
            "completion_tokens": 12 + k % 9,
            "total_tokens": 92 + k % 40 + k % 9,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_eca0ce8298",
    }
    line = {
        "id": f"batch_req_{k:032x}",
        "custom_id": f"r{k}",
        "response": {"status_code": 200, "request_id": f"{k:032x}", "body": body},
        "error": None,
    }
    return json.dumps(line)


def _error_line(k: int, status: int) -> str:
    if status == 0:
        response = {"status_code": 0, "request_id": "", "body": {}}
    elif status == 400:
        response = {
            "status_code": 400,
            "request_id": f"{k:032x}",
            "body": {
                "error": {
                    "message": "Unsupported parameter: 'max_tokens' is not supported with "
                    "this model. Use 'max_completion_tokens' instead.",
                    "type": "invalid_request_error",
                    "param": "max_tokens",
                    "code": "unsupported_parameter",
                }
            },
        }
    else:
        response = {
            "status_code": status,
            "request_id": f"{k:032x}",
            "body": {
                "error": {
                    "message": "The server had an error while processing your request.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
        }
    return json.dumps(
        {"id": f"batch_req_{k:032x}", "custom_id": f"r{k}", "response": response, "error": None}
    )


def result_paths(n: int, folder: Path | None = None) -> list[Path]:
    """Output and error files for n requests r0..r{n-1} (cached)."""
    folder = folder or default_dir()
    out, err = folder / f"output-{n}.jsonl", folder / f"errors-{n}.jsonl"
    if out.exists() and err.exists():
        return [out, err]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    order = rng.permutation(n)
    kind = rng.random(n)
    # 97 % answers, 2 % HTTP 400, 0.5 % status_code 0, 0.5 % HTTP 500.
    ok_keys = order[kind[order] < 0.97]
    dup = ok_keys[: max(1, n // 1000)]  # 0.1 % of the answers written twice
    with out.with_suffix(".tmp").open("w", encoding="utf-8") as stream:
        for k in ok_keys.tolist():
            stream.write(_ok_line(k, rng) + "\n")
        for k in dup.tolist():
            stream.write(_ok_line(k, rng) + "\n")
        for k in range(n, n + max(1, n // 10_000)):  # ids this job never sent
            stream.write(_ok_line(k, rng) + "\n")
    with err.with_suffix(".tmp").open("w", encoding="utf-8") as stream:
        for k in order.tolist():
            r = kind[k]
            if r < 0.97:
                continue
            status = 400 if r < 0.99 else (0 if r < 0.995 else 500)
            stream.write(_error_line(k, status) + "\n")
    out.with_suffix(".tmp").replace(out)
    err.with_suffix(".tmp").replace(err)
    return [out, err]
