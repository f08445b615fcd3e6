"""Bad input fails before anything is sent, with a message that names the column, row or setting."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

import batchframe
from batchframe.accessor import LLMAccessor
from batchframe.emulator import Emulator
from batchframe.errors import ConfigurationError, InputError, TemplateError

MODEL = "gpt-4o-mini"


class Answer(BaseModel):
    label: str


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"review": ["great", "meh", "awful"], "stars": [5, 3, 1], "product id": ["a", "b", "c"]},
        index=pd.Index(["r1", "r2", "r3"], name="rid"),
    )


def assert_nothing_sent(emu: Emulator) -> None:
    stats = emu.stats()
    assert stats["uploads"] == 0
    assert stats["batches_created"] == 0
    assert stats["requests_submitted"] == 0
    assert stats["http_calls"] == {}
    assert batchframe.jobs().empty  # nothing stored either


Case = Callable[[Any], object]

CASES: list[tuple[str, Case, type[Exception], list[str]]] = [
    (
        "unknown placeholder",
        lambda c: frame().llm.batch("Review: {reveiw}", model=MODEL, client=c),
        TemplateError,
        ["{reveiw}", "'review', 'stars', 'product id'", "Did you mean {review}"],
    ),
    (
        "unknown placeholder in a message part",
        lambda c: frame().llm.batch(
            [("system", "Be brief about {product}."), ("user", "{review}")], model=MODEL, client=c
        ),
        TemplateError,
        ["system template", "{product}", "'product id'"],
    ),
    (
        "unknown placeholder in system=",
        lambda c: frame().llm.batch("{review}", system="As {persona}", model=MODEL, client=c),
        TemplateError,
        ["{persona}"],
    ),
    (
        "unbalanced braces",
        lambda c: frame().llm.batch("Review: {review", model=MODEL, client=c),
        TemplateError,
        ["not closed", "{{"],
    ),
    (
        "format spec",
        lambda c: frame().llm.batch("{stars:.1f}", model=MODEL, client=c),
        TemplateError,
        ["Format specs"],
    ),
    (
        "empty frame",
        lambda c: frame().iloc[:0].llm.batch("{review}", model=MODEL, client=c),
        InputError,
        ["empty"],
    ),
    (
        "not a DataFrame",
        lambda c: LLMAccessor(frame()["review"]).batch("{review}", model=MODEL, client=c),
        InputError,
        ["DataFrame", "Series"],
    ),
    (
        "unknown model family",
        lambda c: frame().llm.batch("{review}", model="llama-3-70b", client=c),
        ConfigurationError,
        ["llama-3-70b", "provider="],
    ),
    (
        "unknown provider",
        lambda c: frame().llm.batch("{review}", model=MODEL, provider="mistral", client=c),
        ConfigurationError,
        ["mistral"],
    ),
    (
        "missing value with on_missing='raise'",
        lambda c: (
            frame()
            .assign(review=["great", None, "awful"])
            .llm.batch("{review}", model=MODEL, client=c, on_missing="raise")
        ),
        InputError,
        ["'review'", "'r2'"],
    ),
    (
        "bad on_missing",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, on_missing="skip"),
        InputError,
        ["on_missing", "'skip'"],
    ),
    (
        "empty output name",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, output=""),
        InputError,
        ["output="],
    ),
    (
        "non-string output name",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, output=3),
        InputError,
        ["output=", "3"],
    ),
    (
        "choices and schema together",
        lambda c: frame().llm.batch(
            "{review}", model=MODEL, client=c, choices=["a", "b"], schema=Answer
        ),
        InputError,
        ["choices=", "schema=", "not both"],
    ),
    (
        "empty choices",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, choices=[]),
        InputError,
        ["choices="],
    ),
    (
        "duplicate choices",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, choices=["a", "b", "a"]),
        InputError,
        ["duplicate", "'a'"],
    ),
    (
        "non-string choices",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, choices=["a", 2]),
        InputError,
        ["strings", "2"],
    ),
    (
        "choices as one string",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, choices="positive"),
        InputError,
        ["list of labels"],
    ),
    (
        "schema of the wrong kind",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, schema=int),
        InputError,
        ["pydantic model", "JSON schema"],
    ),
    (
        "schema without properties",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, schema={"type": "string"}),
        InputError,
        ["properties"],
    ),
    (
        "prefix without schema",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, prefix="x_"),
        InputError,
        ["prefix=", "schema="],
    ),
    (
        "non-string prefix",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, schema=Answer, prefix=1),
        InputError,
        ["prefix="],
    ),
    (
        "max_tokens zero",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, max_tokens=0),
        InputError,
        ["max_tokens", "0"],
    ),
    (
        "max_tokens not a number",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, max_tokens="16"),
        InputError,
        ["max_tokens", "'16'"],
    ),
    (
        "a parameter batchframe sets",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, messages=[]),
        InputError,
        ["messages="],
    ),
    (
        "a parameter that is not JSON",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, metadata=object()),
        InputError,
        ["metadata=", "JSON"],
    ),
    (
        "a NaN parameter",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, temperature=float("nan")),
        InputError,
        ["temperature="],
    ),
    (
        "temperature on a reasoning model",
        lambda c: frame().llm.batch("{review}", model="o3-mini", client=c, temperature=0.2),
        InputError,
        ["temperature", "o3-mini"],
    ),
    (
        "unsupported endpoint",
        lambda c: frame().llm.batch("{review}", model=MODEL, client=c, endpoint="/v1/embeddings"),
        InputError,
        ["/v1/embeddings"],
    ),
    (
        "unknown role",
        lambda c: frame().llm.batch([("bot", "{review}")], model=MODEL, client=c),
        InputError,
        ["'bot'"],
    ),
    (
        "template of the wrong shape",
        lambda c: frame().llm.batch(["{review}"], model=MODEL, client=c),
        InputError,
        ["(role, template)"],
    ),
    (
        "system twice",
        lambda c: frame().llm.batch(
            [("system", "a"), ("user", "{review}")], system="b", model=MODEL, client=c
        ),
        InputError,
        ["system"],
    ),
    (
        "duplicate column names",
        lambda c: pd.DataFrame([["a", "b"]], columns=["x", "x"]).llm.batch(
            "{x}", model=MODEL, client=c
        ),
        InputError,
        ["'x'", "more than once"],
    ),
    (
        "client of the other provider",
        lambda c: frame().llm.batch("{review}", model="claude-haiku-4-5", client=c),
        ConfigurationError,
        ["openai", "anthropic"],
    ),
    (
        "unpriced model with a budget",
        lambda c: frame().llm.batch("{review}", model="gpt-9-preview", client=c, max_cost=1.0),
        batchframe.BudgetExceededError,
        ["gpt-9-preview", "price"],
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_fails_before_sending(
    emulator: Emulator, openai_client: Any, call: Case, error: type[Exception], fragments: list[str]
) -> None:
    with pytest.raises(error) as info:
        call(openai_client)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert_nothing_sent(emulator)


def test_claude_specific_input_errors(emulator: Emulator, anthropic_client: Any) -> None:
    with pytest.raises(InputError, match="system prompt"):
        frame().llm.batch(
            [("user", "{review}"), ("system", "late")],
            model="claude-haiku-4-5",
            client=anthropic_client,
        )
    with pytest.raises(InputError, match="start with a user message"):
        frame().llm.batch(
            [("assistant", "Sure."), ("user", "{review}")],
            model="claude-haiku-4-5",
            client=anthropic_client,
        )
    with pytest.raises(InputError, match="max_tokens"):
        frame().llm.batch(
            "{review}", model="claude-haiku-4-5", client=anthropic_client, max_tokens=0
        )
    assert_nothing_sent(emulator)


def test_to_jsonl_rejects_bad_input_without_writing(tmp_path: Path) -> None:
    target = tmp_path / "requests.jsonl"
    with pytest.raises(TemplateError, match="reveiw"):
        frame().llm.to_jsonl(target, "{reveiw}", model=MODEL)
    with pytest.raises(InputError, match="chunk_size"):
        frame().llm.to_jsonl(target, "{review}", model=MODEL, chunk_size=0)
    with pytest.raises(InputError, match="not both"):
        frame().llm.to_jsonl(target, "{review}", model=MODEL, choices=["a"], schema=Answer)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


# -- missing values --------------------------------------------------------------------------


def gappy() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "review": ["great", None, "awful", np.nan, "fine"],
            "stars": pd.array([5, 3, pd.NA, pd.NA, 4], dtype="Int64"),
        },
        index=pd.Index(["r1", "r2", "r3", "r4", "r5"], name="rid"),
    )


def test_missing_value_errors_that_row_and_sends_nothing_for_it(
    emulator: Emulator, openai_client: Any
) -> None:
    df = gappy()
    out = df.llm.batch("{review} ({stars} stars)", model=MODEL, client=openai_client)

    pd.testing.assert_frame_equal(out[df.columns], df)
    errors = out["output_error"]
    assert errors.loc["r1"] is pd.NA and errors.loc["r5"] is pd.NA
    assert errors.loc["r2"] == (
        "missing value in column 'review'; no request was sent (on_missing='row_error')"
    )
    assert errors.loc["r3"] == (
        "missing value in column 'stars'; no request was sent (on_missing='row_error')"
    )
    assert errors.loc["r4"].startswith("missing values in columns 'review', 'stars';")
    assert out["output"].loc[["r2", "r3", "r4"]].isna().all()
    assert out["output"].loc["r1"] == "echo: great (5 stars)"
    assert out["output"].loc["r5"] == "echo: fine (4 stars)"
    # Exactly one of output / error per row.
    assert (out["output"].isna() ^ errors.isna()).all()
    assert emulator.stats()["requests_submitted"] == 2


def test_on_missing_empty_renders_empty_text(emulator: Emulator, openai_client: Any) -> None:
    df = gappy()
    out = df.llm.batch(
        "[{review}] ({stars} stars)", model=MODEL, client=openai_client, on_missing="empty"
    )
    assert out["output_error"].isna().all()
    assert out["output"].tolist() == [
        "echo: [great] (5 stars)",
        "echo: [] (3 stars)",
        "echo: [awful] ( stars)",
        "echo: [] ( stars)",
        "echo: [fine] (4 stars)",
    ]
    assert emulator.stats()["requests_submitted"] == 5


def test_missing_values_in_unreferenced_columns_do_not_matter(
    emulator: Emulator, openai_client: Any
) -> None:
    df = gappy().assign(review=["a", "b", "c", "d", "e"])
    out = df.llm.batch("{review}", model=MODEL, client=openai_client)
    assert out["output_error"].isna().all()


def test_every_row_missing_sends_nothing(emulator: Emulator, openai_client: Any) -> None:
    df = pd.DataFrame({"review": [None, None]}, dtype=object)
    out = df.llm.batch("{review}", model=MODEL, client=openai_client)
    assert out["output"].isna().all()
    assert out["output_error"].str.startswith("missing value in column 'review'").all()
    stats = emulator.stats()
    assert stats["uploads"] == 0 and stats["batches_created"] == 0


def test_numpy_parameters_are_sent_as_plain_json(emulator: Emulator, openai_client: Any) -> None:
    out = frame().llm.batch(
        "{review}",
        model=MODEL,
        client=openai_client,
        max_tokens=np.int64(50),
        temperature=np.float32(0.5),
    )
    assert out["output_error"].isna().all()
