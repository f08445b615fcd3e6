"""Request keys: custom ids every provider accepts, dedup, and any index joined back intact."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import batchframe  # noqa: F401  (registers DataFrame.llm)
from batchframe.emulator import Emulator
from batchframe.prompts.build import custom_ids, keys_from_custom_ids, prepare
from batchframe.prompts.template import parse
from batchframe.records import RequestSpec

ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SPEC = RequestSpec(provider="openai", model="gpt-4o-mini", roles=("user",))
INT64_MAX = np.iinfo(np.int64).max


# -- custom ids ------------------------------------------------------------------------------


@given(hnp.arrays(np.int64, st.integers(0, 200), elements=st.integers(0, INT64_MAX), unique=True))
@settings(max_examples=200, deadline=None)
def test_custom_ids_satisfy_both_providers_and_invert(keys: np.ndarray) -> None:
    ids = custom_ids(keys).to_pylist()
    assert len(set(ids)) == len(ids)  # OpenAI: unique strings
    assert all(isinstance(i, str) and ANTHROPIC_ID.match(i) for i in ids)  # Anthropic's rule
    back = keys_from_custom_ids(pa.array(ids))
    assert back.dtype == np.int64
    assert back.tolist() == keys.tolist()


@pytest.mark.parametrize(
    "junk",
    ["", "r", "x1", "r-1", "r01", "r1 ", " r1", "R1", "r1.0", "r99999999999999999999", None],
)
def test_ids_that_are_not_ours_map_to_minus_one(junk: str | None) -> None:
    keys = keys_from_custom_ids(pa.array(["r5", junk, "r0"], type=pa.string()))
    assert keys.tolist() == [5, -1, 0]


# -- dedup and keys --------------------------------------------------------------------------

prompt_text = st.text(alphabet='ab{}"\n é', max_size=3)


@given(
    st.lists(st.tuples(prompt_text, prompt_text), min_size=1, max_size=40),
    st.integers(min_value=1, max_value=45),
)
@settings(max_examples=200, deadline=None)
def test_identical_prompts_share_a_key(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str]], chunk_rows: int
) -> None:
    frame = pd.DataFrame(rows, columns=["a", "b"])
    templates = [parse("{a}", frame.columns), parse("{b}", frame.columns)]
    spec = RequestSpec(provider="openai", model="m", roles=("system", "user"))

    def prepared_in(chunk: int):  # type: ignore[no-untyped-def]
        return prepare(
            frame,
            spec,
            templates,
            labels={"a": "a", "b": "b"},
            on_missing="raise",
            chunk_rows=chunk,
            spill_dir=tmp_path_factory.mktemp("staging"),
        )

    prepared = prepared_in(chunk_rows)
    keys = prepared.row_keys
    distinct = list(dict.fromkeys(rows))
    assert prepared.n_requests == len(distinct)
    # Keys number distinct requests in order of first appearance, across chunks too.
    assert keys.tolist() == [distinct.index(r) for r in rows]
    batches = list(prepared.requests.batches())
    assert [k for b in batches for k in b.column(0).to_pylist()] == list(range(len(distinct)))
    # Each row's key leads back to exactly its own rendered parts.
    parts = [p.to_pylist() for p in prepared.requests.take(keys)]
    assert list(zip(*parts, strict=True)) == rows
    # Chunking changes how the work is done, never what the job is.
    whole = prepared_in(len(rows))
    assert not whole.requests.spilled
    assert prepared.requests.spilled == (chunk_rows < len(rows))
    assert prepared.fingerprint == whole.fingerprint
    assert prepared.text_bytes == whole.text_bytes


def test_dedupe_false_gives_every_row_its_own_key() -> None:
    frame = pd.DataFrame({"a": ["x", "x", "y"]})
    prepared = prepare(
        frame,
        SPEC,
        [parse("{a}", frame.columns)],
        labels={"a": "a"},
        on_missing="raise",
        dedupe=False,
    )
    assert prepared.row_keys.tolist() == [0, 1, 2]
    assert prepared.n_requests == 3


def test_rows_with_input_errors_get_no_key() -> None:
    frame = pd.DataFrame({"a": ["x", None, "x", "y"]})
    prepared = prepare(
        frame, SPEC, [parse("{a}", frame.columns)], labels={"a": "a"}, on_missing="row_error"
    )
    assert prepared.row_keys.tolist() == [0, -1, 0, 1]
    assert prepared.input_errors.to_pylist()[1].startswith("missing value in column 'a'")


# -- indexes round-trip ----------------------------------------------------------------------

any_string = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)


def _with_duplicates(values: st.SearchStrategy, n: int) -> st.SearchStrategy:
    return st.lists(values, min_size=n, max_size=n)


@st.composite
def odd_indexes(draw: st.DrawFn) -> pd.Index:
    n = draw(st.integers(min_value=1, max_value=8))
    kind = draw(
        st.sampled_from(["str", "int", "float", "datetime_tz", "multi", "mixed", "range", "tuple"])
    )
    name = draw(st.one_of(st.none(), any_string))
    if kind == "str":
        return pd.Index(draw(_with_duplicates(any_string, n)), name=name, dtype=object)
    if kind == "int":
        return pd.Index(draw(_with_duplicates(st.integers(-(2**63), 2**63 - 1), n)), name=name)
    if kind == "float":
        floats = st.floats(allow_nan=True, allow_infinity=True)
        return pd.Index(draw(_with_duplicates(floats, n)), dtype="float64", name=name)
    if kind == "datetime_tz":
        tz = draw(st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata"]))
        stamps = draw(_with_duplicates(st.integers(-(2**32), 2**32), n))
        return pd.DatetimeIndex(pd.to_datetime(stamps, unit="s", utc=True), name=name).tz_convert(
            tz
        )
    if kind == "multi":
        left = draw(_with_duplicates(any_string, n))
        right = draw(_with_duplicates(st.integers(-5, 5), n))
        return pd.MultiIndex.from_arrays([left, right], names=[name, "n"])
    if kind == "mixed":
        mixed = st.one_of(st.integers(-3, 3), any_string, st.just(None))
        return pd.Index(draw(_with_duplicates(mixed, n)), dtype=object, name=name)
    if kind == "tuple":
        values = draw(_with_duplicates(st.tuples(st.integers(0, 2), any_string), n))
        return pd.Index(values, dtype=object, tupleize_cols=False, name=name)
    start = draw(st.integers(-10, 10))
    return pd.RangeIndex(start, start + n, name=name)


def plain(series: pd.Series) -> list[object]:
    return [None if pd.isna(v) else v for v in series]


@pytest.fixture(scope="module")
def fast_emulator():  # type: ignore[no-untyped-def]
    with Emulator(processing_seconds=0.0, seed=5) as emu:
        yield emu


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@given(index=odd_indexes(), data=st.data())
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_index_round_trips(
    fast_emulator: Emulator, provider: str, index: pd.Index, data: st.DataObject
) -> None:
    n = len(index)
    texts = data.draw(_with_duplicates(st.sampled_from(["a", "b {c}", 'ü\n"q"', None]), n))
    frame = pd.DataFrame({"text": texts, "n": np.arange(n), "keep": [f"k{i}" for i in range(n)]})
    frame.index = index
    fast_emulator.reset()
    if provider == "openai":
        client, model = fast_emulator.openai_client(max_retries=0), "gpt-4o-mini"
    else:
        client, model = fast_emulator.anthropic_client(max_retries=0), "claude-haiku-4-5"

    out = frame.llm.batch("Say {text}", model=model, client=client, fresh=True)

    pd.testing.assert_index_equal(out.index, frame.index, exact=True)
    assert list(out.columns) == ["text", "n", "keep", "output", "output_error"]
    pd.testing.assert_frame_equal(out[frame.columns], frame)
    sent = [t for t in texts if t is not None]
    assert plain(out["output"]) == [None if t is None else "echo: Say " + t for t in texts]
    errors = plain(out["output_error"])
    assert errors == [
        None
        if t is not None
        else "missing value in column 'text'; no request was sent (on_missing='row_error')"
        for t in texts
    ]
    stats = fast_emulator.stats()
    assert stats["requests_submitted"] == len(set(sent))  # identical prompts sent once
    assert stats["batches_created"] == (1 if sent else 0)
