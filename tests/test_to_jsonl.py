"""df.llm.to_jsonl writes exactly the lines batch() uploads, streamed in chunks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import batchframe  # noqa: F401  (registers DataFrame.llm)
from batchframe import jsonl
from batchframe.emulator import Emulator

ODD = [
    "plain",
    'quotes " and \\ backslash',
    "braces {review} {{x}}",
    "new\nline\r\ttab",
    "naïve café 日本語 🙂",
    "\x00\x01\x1f control \x7f",
    "\u2028 line separator",
    "",
]


def reviews() -> pd.DataFrame:
    texts = [*ODD, "plain"]  # the duplicate is sent once
    return pd.DataFrame(
        {"review": texts, "stars": [i % len(ODD) for i in range(len(texts))]},
        index=pd.Index([f"row {i}/x" for i in range(len(texts))]),
    )


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def openai_reference(df: pd.DataFrame, **params: Any) -> list[str]:
    """The upload lines built independently, with json.dumps, one row at a time."""
    lines: dict[str, str] = {}
    for review, stars in zip(df["review"], df["stars"]):
        prompt = f"Review ({stars}): {review}"
        body = {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": prompt},
            ],
            **params,
        }
        key = f"r{len(lines)}"
        if prompt not in lines:  # identical requests are written once
            lines[prompt] = dumps(
                {"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": body}
            )
    return list(lines.values())


def write(df: pd.DataFrame, path: Path, **kwargs: Any) -> list[str]:
    df.llm.to_jsonl(
        path,
        "Review ({stars}): {review}",
        model=kwargs.pop("model", "gpt-4o-mini"),
        system="Answer in one word.",
        **kwargs,
    )
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data.decode("utf-8").split("\n")[:-1]


def test_lines_equal_a_json_dumps_reference(tmp_path: Path) -> None:
    df = reviews()
    lines = write(df, tmp_path / "requests.jsonl", max_tokens=16, temperature=0)
    assert lines == openai_reference(df, max_tokens=16, temperature=0)
    assert len(lines) == len(ODD)  # one line per distinct request
    for line in lines:
        json.loads(line)  # every line is valid JSON on its own


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 1000])
def test_chunked_writing_gives_identical_bytes(tmp_path: Path, chunk_size: int) -> None:
    df = reviews()
    whole = tmp_path / "whole.jsonl"
    chunked = tmp_path / "chunked.jsonl"
    write(df, whole)
    write(df, chunked, chunk_size=chunk_size)
    assert chunked.read_bytes() == whole.read_bytes()


def test_lines_are_what_the_openai_emulator_received(
    tmp_path: Path, emulator: Emulator, openai_client: Any
) -> None:
    df = reviews()
    path = tmp_path / "requests.jsonl"
    write(df, path, max_tokens=16)
    df.llm.batch(
        "Review ({stars}): {review}",
        model="gpt-4o-mini",
        system="Answer in one word.",
        client=openai_client,
        max_tokens=16,
    )
    uploads = list(openai_client.files.list(purpose="batch"))
    assert len(uploads) == 1
    received = openai_client.files.content(uploads[0].id).content
    assert received == path.read_bytes()


def test_lines_are_what_the_anthropic_emulator_received(
    tmp_path: Path, emulator: Emulator, anthropic_client: Any
) -> None:
    df = reviews()
    path = tmp_path / "requests.jsonl"
    write(df, path, model="claude-haiku-4-5", max_tokens=16)
    df.llm.batch(
        "Review ({stars}): {review}",
        model="claude-haiku-4-5",
        system="Answer in one word.",
        client=anthropic_client,
        max_tokens=16,
    )
    [batch_id] = emulator.stats()["batch_ids"]
    received = [
        {"custom_id": row.custom_id, "params": row.body}
        for row in emulator._state.batches[batch_id].rows
    ]
    written = [json.loads(line) for line in path.read_text("utf-8").split("\n")[:-1]]
    assert written == received
    first = written[0]["params"]
    assert first == {
        "model": "claude-haiku-4-5",
        "system": "Answer in one word.",
        "messages": [{"role": "user", "content": "Review (0): plain"}],
        "max_tokens": 16,
    }


def test_structured_requests_are_written_too(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    lines = write(reviews(), path, choices=["good", "bad"])
    body = json.loads(lines[0])["body"]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "choice",
            "schema": {
                "type": "object",
                "properties": {"label": {"type": "string", "enum": ["good", "bad"]}},
                "required": ["label"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }


def test_rows_with_missing_values_are_left_out(tmp_path: Path) -> None:
    df = pd.DataFrame({"review": ["a", None, "b"], "stars": [1, 2, 3]})
    lines = write(df, tmp_path / "r.jsonl")
    prompts = [json.loads(line)["body"]["messages"][1]["content"] for line in lines]
    assert prompts == ["Review (1): a", "Review (3): b"]
    lines = write(df, tmp_path / "r.jsonl", on_missing="empty")
    assert len(lines) == 3


def test_responses_endpoint(tmp_path: Path) -> None:
    df = pd.DataFrame({"review": ["a"], "stars": [1]})
    lines = write(df, tmp_path / "r.jsonl", endpoint="/v1/responses", max_tokens=20)
    line = json.loads(lines[0])
    assert line["url"] == "/v1/responses"
    assert line["body"]["input"][1] == {"role": "user", "content": "Review (1): a"}
    assert line["body"]["max_output_tokens"] == 20
    assert "max_tokens" not in line["body"]


# -- the JSON writer itself --------------------------------------------------------------------

any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))


@given(st.lists(any_text, min_size=1, max_size=20), any_text)
@settings(max_examples=300, deadline=None)
def test_fill_matches_json_dumps_for_any_text(values: list[str], other: str) -> None:
    template = {"a": jsonl.slot("x"), "b": [1, {"c": jsonl.slot("y")}], "d": "{q}\n"}
    lines = jsonl.fill(
        template,
        {"x": pa.array(values), "y": pa.array([other] * len(values))},
        len(values),
    ).to_pylist()
    assert lines == [dumps({"a": v, "b": [1, {"c": other}], "d": "{q}\n"}) for v in values]


def test_write_lines_counts_bytes(tmp_path: Path) -> None:
    lines = pa.array(["{}", '{"é":1}'], type=pa.large_string())
    with (tmp_path / "x").open("wb") as stream:
        written = jsonl.write_lines(stream, lines.slice(1))
    assert (tmp_path / "x").read_bytes() == '{"é":1}\n'.encode()
    assert written == len('{"é":1}\n'.encode())
    assert jsonl.byte_lengths(lines).to_pylist() == [3, 9]
