"""The measured work: each stage for batchframe and for the plain baseline.

The baseline is what a careful user writes from the providers' documentation:
``to_dict("records")`` + ``str.format`` + ``json.dumps`` per line to prepare; tiktoken's
``encode`` per row to count tokens; ``json.loads`` per line, a dict keyed by custom_id and a
column assignment to parse and join; the ``openai`` SDK's file and batch calls end to end.

Every function takes its inputs ready (frame loaded, files on disk, tokenizer built) and does
only the measured work; ``prepare_*`` helpers do the unmeasured setup.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import data

# -- prepare: render the template and write the JSONL ------------------------------------------


def prepare_batchframe(frame: pd.DataFrame, path: Path) -> dict[str, Any]:
    import batchframe  # noqa: F401  (registers DataFrame.llm)

    frame.llm.to_jsonl(
        path,
        data.TEMPLATE,
        model=data.MODEL,
        system=data.SYSTEM,
        max_tokens=data.MAX_TOKENS,
        temperature=0,
    )
    return {"bytes": path.stat().st_size}


def prepare_baseline(frame: pd.DataFrame, path: Path) -> dict[str, Any]:
    with path.open("w", encoding="utf-8") as stream:
        for i, row in enumerate(frame.to_dict("records")):
            request = {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": data.MODEL,
                    "messages": [
                        {"role": "system", "content": data.SYSTEM},
                        {"role": "user", "content": data.TEMPLATE.format(**row)},
                    ],
                    "max_tokens": data.MAX_TOKENS,
                    "temperature": 0,
                },
            }
            stream.write(json.dumps(request) + "\n")
    return {"bytes": path.stat().st_size}


def request_bodies(path: Path) -> list[dict[str, Any]]:
    """The request bodies of a JSONL file, in file order (for the identity check)."""
    with path.open(encoding="utf-8") as stream:
        return [json.loads(line)["body"] for line in stream]


# -- token estimate (dry run) ----------------------------------------------------------------


def encoding() -> Any:
    """tiktoken's o200k_base (gpt-4o-mini), built offline from the bpe-openai vocabulary."""
    from batchframe.estimate.tokens import get_encoding

    return get_encoding("o200k_base")


def tokens_batchframe(frame: pd.DataFrame) -> dict[str, Any]:
    import batchframe  # noqa: F401

    estimate = frame.llm.batch(
        data.TEMPLATE,
        model=data.MODEL,
        system=data.SYSTEM,
        max_tokens=data.MAX_TOKENS,
        temperature=0,
        dry_run=True,
    )
    return {"input_tokens": int(estimate.input_tokens)}


def tokens_count_only(messages: list[tuple[str, Any]]) -> dict[str, Any]:
    """batchframe's counter alone, on message contents already rendered and deduplicated."""
    from batchframe.estimate.tokens import count_chat_tokens

    count = count_chat_tokens(data.MODEL, messages)
    return {"input_tokens": int(count.total)}


def rendered_prompts(frame: pd.DataFrame) -> list[str]:
    return [data.TEMPLATE.format(**row) for row in frame.to_dict("records")]


def tokens_tokenizer_batch(enc: Any, unique_prompts: list[str]) -> dict[str, Any]:
    """The tokenizer's own batch call on the deduplicated prompts (plus the shared system)."""
    lengths = [len(ids) for ids in enc.encode_ordinary_batch(unique_prompts)]
    system = len(enc.encode_ordinary(data.SYSTEM))
    return {"content_tokens": int(sum(lengths)) + system}


def tokens_baseline(frame: pd.DataFrame, enc: Any) -> dict[str, Any]:
    # The cookbook rule: 3 per message + its role + its content, and 3 to prime the reply.
    framing = 3 + len(enc.encode("system")) + len(enc.encode(data.SYSTEM))
    framing += 3 + len(enc.encode("user")) + 3
    total = 0
    for row in frame.to_dict("records"):
        total += framing + len(enc.encode(data.TEMPLATE.format(**row)))
    return {"input_tokens": total}


# -- parse and join ----------------------------------------------------------------------------


def parse_join_batchframe(frame: pd.DataFrame, paths: list[Path], work: Path) -> dict[str, Any]:
    out = joined_batchframe(frame, paths, work)
    return {"answered": int(out["output"].notna().sum()), "rows": len(out)}


def parse_join_baseline(frame: pd.DataFrame, paths: list[Path]) -> dict[str, Any]:
    out = joined_baseline(frame, paths)
    return {"answered": int(out["output"].notna().sum()), "rows": len(out)}


def joined_batchframe(frame: pd.DataFrame, paths: list[Path], work: Path) -> pd.DataFrame:
    """What batchframe does from downloaded files to the joined frame.

    Decode, reconcile with the shard's keys (drop unknown ids), store the shard's results
    (Parquet, as the runner does), load them back, settle duplicates and attempts, build the
    key-level columns and fan them out onto the frame; with the memory pool the runner and
    the join use.
    """
    try:
        from batchframe.memory import steady_pool
    except ImportError:  # an older batchframe
        return _joined_batchframe(frame, paths, work)
    with steady_pool():
        return _joined_batchframe(frame, paths, work)


def _joined_batchframe(frame: pd.DataFrame, paths: list[Path], work: Path) -> pd.DataFrame:
    import pyarrow as pa

    from batchframe.join import Columns, key_level, to_rows
    from batchframe.outcomes import load_results, settle, write_results
    from batchframe.providers.base import RemoteStatus
    from batchframe.providers.openai import OpenAIProvider

    n = len(frame)
    decoded = OpenAIProvider().decode(paths)
    keys = pa.chunked_array([pa.array(np.arange(n, dtype=np.int64))])
    status = RemoteStatus(batch_id="batch_bench", status="completed", outcome="ended", total=n)
    try:
        from batchframe.runner import _reconcile

        results, _ = _reconcile(decoded, keys, status, cancelled=False)
    except ImportError:  # the runner's internals moved: keep only our keys
        got = decoded["key"].to_numpy(zero_copy_only=False)
        results = decoded.filter(pa.array((got >= 0) & (got < n)))
    results = results.append_column("shard", pa.array(np.zeros(results.num_rows, np.int64)))
    results = results.append_column("attempt", pa.array(np.ones(results.num_rows, np.int64)))
    folder = work / "results"
    folder.mkdir(parents=True, exist_ok=True)
    write_results(folder / "0.parquet", results)
    settled = settle(load_results(folder), n)
    columns = Columns("output")
    values, error, raw = key_level(
        settled, n, response_format=None, columns=columns, unfinished=None
    )
    row_keys = np.arange(n, dtype=np.int64)
    input_errors = pa.nulls(n, pa.large_string())
    return to_rows(frame, row_keys, input_errors, values, error, raw, columns)


def joined_baseline(frame: pd.DataFrame, paths: list[Path]) -> pd.DataFrame:
    answers: dict[str, str] = {}
    errors: dict[str, str] = {}
    for path in paths:
        with path.open(encoding="utf-8") as stream:
            for line in stream:
                record = json.loads(line)
                response = record.get("response") or {}
                body = response.get("body") or {}
                custom_id = record["custom_id"]
                if response.get("status_code") == 200:
                    answers[custom_id] = body["choices"][0]["message"]["content"]
                else:
                    error = body.get("error") or record.get("error") or {}
                    errors[custom_id] = (
                        error.get("message") or f"HTTP {response.get('status_code')}"
                    )
    ids = [f"r{i}" for i in range(len(frame))]
    out = frame.copy()
    out["output"] = [answers.get(i) for i in ids]
    out["output_error"] = [None if i in answers else errors.get(i, "no result") for i in ids]
    return out


# -- end to end on the emulator --------------------------------------------------------------


def e2e_batchframe(frame: pd.DataFrame, base_url: str, home: Path) -> dict[str, Any]:
    import openai

    import batchframe  # noqa: F401

    client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=2)
    out = frame.llm.batch(
        data.TEMPLATE,
        model=data.MODEL,
        system=data.SYSTEM,
        max_tokens=data.MAX_TOKENS,
        temperature=0,
        client=client,
        progress=False,
        home=home,
        poll_interval=0.05,
    )
    return {"answered": int(out["output"].notna().sum()), "rows": len(out)}


def e2e_baseline(frame: pd.DataFrame, base_url: str, work: Path) -> dict[str, Any]:
    """The documented SDK recipe: one JSONL per 50,000 requests, upload, create, poll, join."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=2)
    records = frame.to_dict("records")
    batches = []
    for start in range(0, len(records), 50_000):
        path = work / f"requests-{start}.jsonl"
        with path.open("w", encoding="utf-8") as stream:
            for i in range(start, min(start + 50_000, len(records))):
                body = {
                    "model": data.MODEL,
                    "messages": [
                        {"role": "system", "content": data.SYSTEM},
                        {"role": "user", "content": data.TEMPLATE.format(**records[i])},
                    ],
                    "max_tokens": data.MAX_TOKENS,
                    "temperature": 0,
                }
                request = {
                    "custom_id": f"r{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": body,
                }
                stream.write(json.dumps(request) + "\n")
        with path.open("rb") as stream:
            uploaded = client.files.create(file=stream, purpose="batch")
        batches.append(
            client.batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
            ).id
        )
    answers: dict[str, str] = {}
    errors: dict[str, str] = {}
    for batch_id in batches:
        while True:
            batch = client.batches.retrieve(batch_id)
            if batch.status in ("completed", "failed", "expired", "cancelled"):
                break
            time.sleep(0.05)
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for line in client.files.content(file_id).text.splitlines():
                record = json.loads(line)
                response = record.get("response") or {}
                body = response.get("body") or {}
                if response.get("status_code") == 200:
                    answers[record["custom_id"]] = body["choices"][0]["message"]["content"]
                else:
                    error = body.get("error") or record.get("error") or {}
                    errors[record["custom_id"]] = error.get("message") or "error"
    ids = [f"r{i}" for i in range(len(frame))]
    out = frame.copy()
    out["output"] = [answers.get(i) for i in ids]
    out["output_error"] = [None if i in answers else errors.get(i, "no result") for i in ids]
    return {"answered": int(out["output"].notna().sum()), "rows": len(out)}


def environment() -> dict[str, Any]:
    """Versions and the machine, for the report."""
    import platform

    import pyarrow
    import tiktoken

    versions = {
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "pyarrow": pyarrow.__version__,
        "numpy": np.__version__,
        "tiktoken": tiktoken.__version__,
    }
    try:
        from importlib.metadata import version

        versions["batchframe"] = version("batchframe")
        versions["openai"] = version("openai")
        versions["orjson"] = version("orjson")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        pass
    return {"versions": versions, "cpus": os.cpu_count(), "machine": platform.machine()}
