"""Decoding OpenAI output and error files: our fixtures line by line, and the recorded files.

The fixtures in tests/fixtures/openai/ are written for this project from what the recorded real
files (../shared/recorded, see its README) show: lines without usage or service_tier, a row
twice, an id we never sent, `status_code: 0` with an empty body, `response: null` with a
batch-level error, a line cut off mid-download, and /v1/responses bodies with reasoning items.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from batchframe.providers.openai import OpenAIProvider

FIXTURES = Path(__file__).parent / "fixtures" / "openai"
RECORDED = Path(__file__).resolve().parents[2] / "shared" / "recorded"


def decode(*names: str) -> list[dict]:  # type: ignore[type-arg]
    table: pa.Table = OpenAIProvider(client=None).decode([FIXTURES / n for n in names])
    return table.to_pylist()


def test_output_lines() -> None:
    rows = decode("output_mixed.jsonl")
    assert [(r["key"], r["fate"]) for r in rows] == [
        (0, "ok"), (1, "ok"), (2, "ok"), (3, "ok"), (0, "ok"), (-1, "ok")
    ]  # fmt: skip
    first = rows[0]
    assert first["text"] == "billing"
    assert (first["input_tokens"], first["output_tokens"], first["cached_tokens"]) == (21, 5, 8)
    assert rows[1]["text"] == "Größe M 🙂"
    assert rows[1]["input_tokens"] is None  # no usage in the older shape: unknown, not zero
    assert rows[2]["finish_reason"] == "length"
    assert rows[3]["text"] is None and rows[3]["refusal"] == "I can't help with that."


def test_error_lines() -> None:
    rows = {r["key"]: r for r in decode("errors_mixed.jsonl")}
    assert rows[4]["fate"] == "failed"
    assert rows[4]["error_code"] == "unsupported_parameter"
    assert "max_completion_tokens" in rows[4]["error_message"]
    # Retryable: an empty status-0 line, an expired request, a 500, a 429, a truncated line.
    for key in (5, 6, 7, 8, 9):
        assert rows[key]["fate"] == "retry", rows[key]
    assert rows[6]["error_code"] == "batch_expired"
    assert rows[5]["error_message"]  # says what happened, never blank


def test_responses_endpoint_lines() -> None:
    (row,) = decode("output_responses.jsonl")
    assert (row["key"], row["fate"], row["text"]) == (10, "ok", "Paris")
    assert (row["input_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (30, 12, 10)


def _recorded_openai_files() -> list[Path]:
    if not RECORDED.is_dir():
        return []
    files = []
    for path in sorted(RECORDED.rglob("*.jsonl")):
        try:
            first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
        except (ValueError, IndexError):
            continue
        if isinstance(first, dict) and "response" in first and "custom_id" in first:
            files.append(path)
    return files


@pytest.mark.skipif(
    not _recorded_openai_files(), reason="../shared/recorded is not beside the checkout"
)
@pytest.mark.parametrize(
    "path", _recorded_openai_files(), ids=lambda p: p.parent.name + "/" + p.name
)
def test_recorded_files_decode_to_sensible_fates(path: Path) -> None:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    rows = OpenAIProvider(client=None).decode([path]).to_pylist()
    assert len(rows) == len(lines)
    for line, row in zip(lines, rows, strict=True):
        status = (line.get("response") or {}).get("status_code")
        assert row["fate"] in ("ok", "failed", "retry")
        if row["fate"] == "ok":
            assert status == 200
            assert row["text"] is not None or row["refusal"] is not None, line
        else:
            assert row["error_message"], line
        if status == 0 or (status or 0) >= 500 or line.get("response") is None:
            assert row["fate"] == "retry"
        elif status is not None and 400 <= status < 500 and status not in (408, 409, 429):
            assert row["fate"] == "failed"
