"""Templates: parsing, literal braces, data as data, and vectorised rendering vs a reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import batchframe  # noqa: F401  (registers DataFrame.llm)
from batchframe.emulator import Emulator
from batchframe.errors import InputError, TemplateError
from batchframe.prompts.render import column_text, render
from batchframe.prompts.template import parse

# Column names: anything without braces (spaces, dots, colons, non-ASCII, ...).
column_names = st.text(
    alphabet=st.characters(blacklist_characters="{}", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
)
# Literal text and data: anything at all, braces, quotes and newlines included.
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
tricky_text = st.one_of(
    any_text,
    st.sampled_from(
        ["{x}", "{{", "}}", '"quoted"', "a\nb\r\n", "naïve 日本 🙂", "\\", "{0}", "%s"]
    ),
)


def escape(literal: str) -> str:
    return literal.replace("{", "{{").replace("}", "}}")


@st.composite
def template_cases(draw: st.DrawFn) -> tuple[list[str], list[object], pd.DataFrame]:
    """(column names, template pieces, frame): pieces alternate literal / column index."""
    names = draw(st.lists(column_names, min_size=1, max_size=4, unique=True))
    n_rows = draw(st.integers(min_value=1, max_value=6))
    frame = pd.DataFrame(
        {name: draw(st.lists(tricky_text, min_size=n_rows, max_size=n_rows)) for name in names}
    )
    n_slots = draw(st.integers(min_value=0, max_value=5))
    pieces: list[object] = [draw(tricky_text)]
    for _ in range(n_slots):
        pieces.append(draw(st.sampled_from(names)))
        pieces.append(draw(tricky_text))
    return names, pieces, frame


def source_of(pieces: list[object]) -> str:
    return "".join(
        escape(str(p)) if i % 2 == 0 else "{" + str(p) + "}" for i, p in enumerate(pieces)
    )


def reference(pieces: list[object], row: pd.Series) -> str:
    """A naive per-row rendering: literal text and each value's str(), concatenated."""
    return "".join(str(p) if i % 2 == 0 else str(row[p]) for i, p in enumerate(pieces))


@given(template_cases())
@settings(max_examples=200, deadline=None)
def test_vectorised_render_equals_naive_reference(case) -> None:
    names, pieces, frame = case
    template = parse(source_of(pieces), frame.columns)
    assert template.columns == tuple(pieces[1::2])
    assert template.literals == tuple(pieces[0::2]) or template.is_constant
    rendered = render(frame, (template,), labels={n: n for n in names}, on_missing="row_error")
    expected = [reference(pieces, row) for _, row in frame.iterrows()]
    assert rendered.parts[0].to_pylist() == expected
    assert rendered.input_errors.null_count == len(frame)


@given(any_text)
@settings(max_examples=200, deadline=None)
def test_escaped_text_is_a_constant_template(text: str) -> None:
    template = parse(escape(text), ["a"])
    assert template.is_constant
    assert template.pieces == (text,)


@given(st.lists(column_names, min_size=1, max_size=5, unique=True), st.data())
@settings(max_examples=100, deadline=None)
def test_any_column_name_can_be_a_placeholder(names: list[str], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(names))
    template = parse(f"<{{{name}}}>", names)
    assert template.pieces == ("<", name, ">")


@pytest.mark.parametrize(
    ("source", "pieces"),
    [
        ("a {x} b", ("a ", "x", " b")),
        ("{{x}}", ("{x}",)),
        ("{{{x}}}", ("{", "x", "}")),
        ("}} {x}{x} {{", ("} ", "x", "", "x", " {")),
        ("{price:usd}", ("", "price:usd", "")),  # a column literally named "price:usd"
        ("{a.b} {c[0]}", ("", "a.b", " ", "c[0]", "")),
        ("{größe} {日本}", ("", "größe", " ", "日本", "")),
        ("{with space}", ("", "with space", "")),
        ("{0}", ("", "0", "")),  # an integer column label
    ],
)
def test_parse_examples(source: str, pieces: tuple[str, ...]) -> None:
    columns = ["x", "price:usd", "a.b", "c[0]", "größe", "日本", "with space", 0]
    assert parse(source, columns).pieces == pieces


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{nope}", "no column 'nope'"),
        ("{}", "empty placeholder"),
        ("{x", "not closed"),
        ("x}", "lone '}'"),
        ("{x:>10}", "Format specs"),
        ("{x!r}", "Format specs"),
        ("{x.__class__}", "attributes and items are not reachable"),
        ("{x[0]}", "attributes and items are not reachable"),
        ("{ x }", "Did you mean {x}"),
        ("{texts}", "Did you mean {text}"),
        ("{a{b}", "not closed"),
    ],
)
def test_template_errors(source: str, fragment: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse(source, ["x", "text"])
    message = str(info.value)
    assert fragment in message
    assert isinstance(info.value, InputError)


def test_unknown_placeholder_lists_the_columns() -> None:
    with pytest.raises(TemplateError) as info:
        parse("Review: {reveiw}", ["review", "stars", "product id"])
    message = str(info.value)
    assert "'reveiw'" in message
    assert "'review', 'stars', 'product id'" in message


def test_template_must_be_a_string() -> None:
    with pytest.raises(TemplateError, match="must be a string"):
        parse(42, ["x"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2, 3], ["1", "2", "3"]),
        ([1.5, 0.1, 1e20], ["1.5", "0.1", "1e+20"]),
        ([3.0, None, 4.0], ["3", "", "4"]),  # an int column with a gap reads as written
        ([1e20, 2.0], ["1e+20", "2.0"]),  # beyond 2**53 floats stay floats
        ([True, False], ["True", "False"]),
        (["a", {"k": "{v}"}, [1, 2]], ["a", "{'k': '{v}'}", "[1, 2]"]),
        (pd.Series(["x", "y"], dtype="category"), ["x", "y"]),
        (pd.Series([1, None], dtype="Int64"), ["1", ""]),
        (
            pd.Series(pd.date_range("2024-01-01", periods=2, tz="Europe/Berlin")),
            ["2024-01-01 00:00:00+01:00", "2024-01-02 00:00:00+01:00"],
        ),
        (np.array([np.float32(0.1)]), ["0.1"]),
    ],
)
def test_column_text(values: object, expected: list[str]) -> None:
    text, _missing = column_text(pd.Series(values))
    assert text.to_pylist() == expected


def test_missing_values_are_detected() -> None:
    _, missing = column_text(pd.Series(["a", None, np.nan, pd.NA, ""], dtype=object))
    assert missing.tolist() == [False, True, True, True, False]


def test_message_templates_render_each_part() -> None:
    frame = pd.DataFrame({"q": ["2+2?", "{x}"], "lang": ["en", "fr"]})
    templates = (
        parse("Answer in {lang}.", frame.columns),
        parse("Example: 1+1?", frame.columns),
        parse("2", frame.columns),
        parse("{q}", frame.columns),
    )
    rendered = render(frame, templates, labels={"q": "q", "lang": "lang"}, on_missing="raise")
    assert [p.to_pylist() for p in rendered.parts] == [
        ["Answer in en.", "Answer in fr."],
        ["Example: 1+1?", "Example: 1+1?"],
        ["2", "2"],
        ["2+2?", "{x}"],
    ]


@pytest.fixture(scope="module")
def fast_emulator():  # type: ignore[no-untyped-def]
    with Emulator(processing_seconds=0.0, seed=3) as emu:
        yield emu


@pytest.mark.filterwarnings("ignore:The template has no")
@given(template_cases())
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_rendered_prompts_reach_the_provider_verbatim(fast_emulator: Emulator, case) -> None:
    """End to end: the emulator echoes the last user message, so the answer shows the prompt."""
    _names, pieces, frame = case
    client = fast_emulator.openai_client(max_retries=0)
    pieces = [*pieces[:-1], str(pieces[-1]) + " EOT"]  # never an empty or blank prompt
    out = frame.llm.batch(source_of(pieces), model="gpt-4o-mini", client=client)
    expected = ["echo: " + reference(pieces, row) for _, row in frame.iterrows()]
    assert out["output"].tolist() == expected
    assert out["output_error"].isna().all()
