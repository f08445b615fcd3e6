"""Shards stream to disk chunk by chunk and still split exactly at the provider's limits."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from batchframe.planner import write_shards
from batchframe.prompts.build import prepare
from batchframe.prompts.template import parse
from batchframe.providers.base import Limits
from batchframe.providers.openai import OpenAIProvider
from batchframe.records import RequestSpec


class TinyLimits(OpenAIProvider):
    """The real OpenAI encoder under small limits, so splits happen at test sizes."""

    def __init__(self, max_requests: int, max_bytes: int) -> None:
        super().__init__(client=None)
        self.limits = Limits(max_requests=max_requests, max_bytes=max_bytes)


def _prepared(texts: list[str]):  # type: ignore[no-untyped-def]
    frame = pd.DataFrame({"t": texts})
    spec = RequestSpec(provider="openai", model="gpt-4o-mini", roles=("user",), params={})
    return prepare(
        frame,
        spec,
        [parse("{t}", frame.columns)],
        labels={"t": "t"},
        on_missing="raise",
        dedupe=False,
    )


def _read(folder: Path, shards) -> list[tuple[list[bytes], list[int]]]:  # type: ignore[no-untyped-def]
    out = []
    for shard in shards:
        lines = (folder / f"{shard.number}.jsonl").read_bytes().splitlines(keepends=True)
        keys = pq.read_table(folder / f"{shard.number}.keys.parquet")["key"].to_pylist()
        assert len(lines) == len(keys) == shard.requests
        assert sum(map(len, lines)) == shard.bytes
        out.append((lines, keys))
    return out


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=120), min_size=1, max_size=60),
    max_requests=st.integers(min_value=1, max_value=20),
    chunk=st.integers(min_value=1, max_value=25),
)
def test_chunked_writing_matches_one_pass(
    tmp_path_factory, lengths: list[int], max_requests: int, chunk: int
) -> None:  # type: ignore[no-untyped-def]
    prepared = _prepared(["x" * n for n in lengths])
    provider = TinyLimits(max_requests=max_requests, max_bytes=600)
    keys = np.arange(prepared.n_requests, dtype=np.int64)
    args = (provider, prepared.spec, prepared.requests, keys)

    one = tmp_path_factory.mktemp("one")
    many = tmp_path_factory.mktemp("many")
    whole = _read(one, write_shards(one, *args, chunk=10_000))
    pieces = _read(many, write_shards(many, *args, chunk=chunk))
    assert whole == pieces

    lines = [line for shard_lines, _ in whole for line in shard_lines]
    assert [key for _, shard_keys in whole for key in shard_keys] == list(range(len(lengths)))
    for shard_lines, _ in whole:
        assert len(shard_lines) <= max_requests
        assert sum(map(len, shard_lines)) <= 600
    # Greedy: no shard could have taken the next shard's first line.
    for (a, _), (b, _) in itertools.pairwise(whole):
        assert len(a) == max_requests or sum(map(len, a)) + len(b[0]) > 600
    assert len(lines) == len(lengths)


def test_shard_lines_equal_to_jsonl(tmp_path: Path) -> None:
    texts = [f"row {i} ü {{brace}}" for i in range(250)]
    frame = pd.DataFrame({"t": texts})
    frame.llm.to_jsonl(tmp_path / "all.jsonl", "{t}", model="gpt-4o-mini")
    prepared = _prepared(texts)
    folder = tmp_path / "shards"
    folder.mkdir()
    shards = write_shards(
        folder,
        TinyLimits(max_requests=40, max_bytes=10**9),
        prepared.spec,
        prepared.requests,
        np.arange(prepared.n_requests, dtype=np.int64),
        chunk=33,
    )
    assert [s.requests for s in shards] == [40] * 6 + [10]
    joined = b"".join((folder / f"{s.number}.jsonl").read_bytes() for s in shards)
    assert joined == (tmp_path / "all.jsonl").read_bytes()
    assert pa.concat_arrays(
        [pq.read_table(folder / f"{s.number}.keys.parquet")["key"].combine_chunks() for s in shards]
    ).to_pylist() == list(range(250))
