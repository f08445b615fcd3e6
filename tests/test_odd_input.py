"""Hostile and odd input: each case gets a named error or a correct result, never a silent gap."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import batchframe
from batchframe.emulator import Emulator

MODEL = "gpt-4o-mini"


def run(df: pd.DataFrame, template: str, client, **kwargs) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    out = df.llm.batch(template, model=MODEL, client=client, **kwargs)
    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(df.index)
    assert (out["output"].notna() ^ out["output_error"].notna()).all()
    return out


@pytest.mark.parametrize(
    ("values", "rendered"),
    [
        ([1, 2, 3], ["1", "2", "3"]),
        ([1.5, 2.0, 1e20], ["1.5", "2.0", "1e+20"]),
        (pd.array([1, 2, 3], dtype="Int64"), ["1", "2", "3"]),
        ([True, False, True], ["True", "False", "True"]),
        ([[1, 2], ["a"], []], ["[1, 2]", "['a']", "[]"]),
        (pd.Categorical(["x", "y", "x"]), ["x", "y", "x"]),
        (pd.array(["p", "q", "ü"], dtype="string[pyarrow]"), ["p", "q", "ü"]),
        (
            pd.to_datetime(["2024-01-01", "2024-03-01T10:00", "2024-04-01"], format="ISO8601"),
            ["2024-01-01 00:00:00", "2024-03-01 10:00:00", "2024-04-01 00:00:00"],
        ),
        ([dt.date(2024, 1, 1), dt.date(2024, 2, 2), dt.date(2024, 3, 3)], None),
    ],
    ids=["int", "float", "Int64", "bool", "list", "category", "arrow-string", "datetime", "date"],
)
def test_non_string_values_render_as_text(
    emulator: Emulator, openai_client, values, rendered
) -> None:  # type: ignore[no-untyped-def]
    df = pd.DataFrame({"v": values})
    out = run(df, "V={v}", openai_client)
    expected = rendered if rendered is not None else [str(v) for v in values]
    assert list(out["output"]) == [f"echo: V={text}" for text in expected]


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA, pd.NaT])
def test_missing_values_become_row_errors(emulator: Emulator, openai_client, missing) -> None:  # type: ignore[no-untyped-def]
    df = pd.DataFrame({"v": pd.array(["a", missing, "c"], dtype=object)}, index=["x", "y", "z"])
    out = run(df, "V={v}", openai_client)
    assert out.loc["y", "output_error"] == (
        "missing value in column 'v'; no request was sent (on_missing='row_error')"
    )
    assert emulator.stats()["requests_submitted"] == 2


def test_missing_values_can_render_empty(emulator: Emulator, openai_client) -> None:
    df = pd.DataFrame({"v": ["a", None]})
    out = run(df, "V={v}.", openai_client, on_missing="empty")
    assert list(out["output"]) == ["echo: V=a.", "echo: V=."]


def test_missing_values_can_raise_naming_column_and_row() -> None:
    df = pd.DataFrame({"v": ["a", None]}, index=["first", "second"])
    with pytest.raises(batchframe.InputError, match=r"'v'.*'second'|'second'.*'v'"):
        df.llm.batch("V={v}", model=MODEL, dry_run=True, on_missing="raise")


def test_template_without_placeholders_warns_and_sends_once(
    emulator: Emulator, openai_client
) -> None:
    df = pd.DataFrame({"v": range(5)})
    with pytest.warns(UserWarning, match="no \\{column\\} placeholders"):
        out = run(df, "Tell me a joke", openai_client)
    assert (out["output"] == "echo: Tell me a joke").all()
    assert emulator.stats()["requests_submitted"] == 1


def test_index_of_tuples_and_multiindex(emulator: Emulator, openai_client) -> None:
    tuples = pd.DataFrame(
        {"v": ["a", "b", "c"]}, index=pd.Index([("a", 1), ("b", 2), ("a", 1)], tupleize_cols=False)
    )
    assert list(run(tuples, "{v}", openai_client)["output"]) == ["echo: a", "echo: b", "echo: c"]
    multi = pd.DataFrame(
        {"v": ["a", "b"]},
        index=pd.MultiIndex.from_tuples(
            [("x", dt.datetime(2024, 1, 1)), ("x", dt.datetime(2024, 1, 2))]
        ),
    )
    assert list(run(multi, "{v}", openai_client)["output"]) == ["echo: a", "echo: b"]


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_bad_output_names_are_refused(name) -> None:  # type: ignore[no-untyped-def]
    df = pd.DataFrame({"v": ["a"]})
    with pytest.raises(batchframe.InputError, match="output="):
        df.llm.batch("{v}", model=MODEL, output=name, dry_run=True)


def test_request_over_the_size_cap_is_refused_naming_the_row(
    emulator: Emulator, openai_client, batchframe_home
) -> None:  # type: ignore[no-untyped-def]
    df = pd.DataFrame({"v": ["short", "x" * 5000, "short too"]}, index=["a", "b", "c"])
    with pytest.raises(batchframe.RequestTooLargeError, match=r"row 'b' \(position 1\)"):
        df.llm.batch("{v}", model=MODEL, client=openai_client, max_shard_bytes=2000)
    assert emulator.stats()["uploads"] == 0
    assert not (batchframe_home / "jobs").exists() or not any((batchframe_home / "jobs").iterdir())


def test_request_over_the_model_context_gets_the_providers_row_error(
    emulator: Emulator, openai_client
) -> None:
    # The emulator, like the service, refuses a prompt longer than the model's context window.
    df = pd.DataFrame({"v": ["fine", "word " * 140_000]})
    out = run(df, "{v}", openai_client)
    assert out["output"].iloc[0] == "echo: fine"
    assert "context_length_exceeded" in out["output_error"].iloc[1]


def test_small_byte_cap_splits_into_many_shards(emulator: Emulator, openai_client) -> None:
    df = pd.DataFrame({"v": [f"row {i} " + "y" * 200 for i in range(30)]})
    out = run(df, "{v}", openai_client, max_shard_bytes=2_000, max_in_flight=2)
    assert out["output"].notna().all()
    assert emulator.stats()["batches_created"] >= 5
