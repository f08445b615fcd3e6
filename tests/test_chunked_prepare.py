"""Frames longer than one chunk: rendered chunk by chunk, requests spilled to disk, same job.

BATCHFRAME_CHUNK_ROWS makes the chunks small so every path that reads the spilled requests
(shards, retries, token estimate, pilot, to_jsonl) runs here on a few hundred rows; the
memory this saves at 10 million rows is measured in benchmarks/ (``--stages scale``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import batchframe
from batchframe.emulator import Emulator
from batchframe.errors import ConfigurationError, InputError
from batchframe.prompts.build import _SeenRequests, prepare
from batchframe.prompts.template import parse
from batchframe.records import RequestSpec

CHUNK = 64


def catalog(n: int = 500) -> pd.DataFrame:
    """Products whose descriptions repeat across chunks (170 distinct), with gaps and faults."""
    descriptions = [f"product {i % 170}: a sturdy thing, ü {{braces}}" for i in range(n)]
    descriptions[7] = "EMU:500 fails once, then answers"  # retried from the spilled requests
    descriptions[300] = None  # type: ignore[call-overload]
    index = pd.Index([f"sku/{i} é" for i in range(n)], name="sku")
    return pd.DataFrame({"description": descriptions, "price": np.arange(n) % 170 % 9}, index=index)


TEMPLATE = "Label {description} (costs {price})"


def run(frame: pd.DataFrame, client: object, home: Path, **kwargs: object) -> pd.DataFrame:
    out = frame.llm.batch(
        TEMPLATE, model="gpt-4o-mini", client=client, home=home, poll_interval=0.01, **kwargs
    )
    assert isinstance(out, pd.DataFrame)
    return out


def test_a_chunked_job_equals_a_whole_one(
    emulator: Emulator, openai_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    frame = catalog()
    monkeypatch.setenv("BATCHFRAME_CHUNK_ROWS", str(CHUNK))
    chunked = run(frame, openai_client, tmp_path / "chunked", max_shard_requests=50)
    stats = emulator.stats()
    monkeypatch.delenv("BATCHFRAME_CHUNK_ROWS")
    whole = run(frame, openai_client, tmp_path / "whole")

    pd.testing.assert_frame_equal(chunked, whole)
    assert chunked["output"].notna().sum() == len(frame) - 1
    assert chunked.loc["sku/300 é", "output_error"].startswith("missing value")
    # 171 distinct prompts across 8 chunks; the EMU:500 one fails the first time it is seen
    # (in the chunked job, resubmitted from its spilled requests), so it is sent twice there.
    assert stats["requests_submitted"] == 172
    assert stats["submissions_by_body"] and max(stats["submissions_by_body"].values()) == 2
    assert stats["duplicate_submissions"] == 0
    # The unchunked job lives in another home, so it sends its own 171.
    assert emulator.stats()["requests_submitted"] - stats["requests_submitted"] == 171
    job_dirs = list((tmp_path / "chunked" / "jobs").iterdir())
    assert len(job_dirs) == 1
    assert (job_dirs[0] / "requests.arrow").exists()
    # The spill file moved into the job: nothing is left in staging.
    assert list((tmp_path / "chunked" / "staging").iterdir()) == []

    # Another process sees the same result: the frame was kept in slices of CHUNK rows.
    (job,) = batchframe.jobs(home=tmp_path / "chunked")["job_id"]
    monkeypatch.setenv("BATCHFRAME_CHUNK_ROWS", str(CHUNK))
    attached = batchframe.attach(job, home=tmp_path / "chunked", progress=False).result()
    pd.testing.assert_frame_equal(attached, whole)

    # The same call again, unchunked, finds the same job: its fingerprint does not depend on
    # chunking. Nothing new is sent.
    created = emulator.stats()["batches_created"]
    again = run(frame, openai_client, tmp_path / "chunked")
    pd.testing.assert_frame_equal(again, whole)
    assert emulator.stats()["batches_created"] == created


def test_a_column_whose_type_changes_between_slices_is_kept(
    emulator: Emulator, openai_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BATCHFRAME_CHUNK_ROWS", "10")
    values: list[object] = list(range(10)) + [f"code {i}" for i in range(15)]
    frame = pd.DataFrame({"t": [f"row {i}" for i in range(25)], "mixed": values})
    out = run(frame.rename(columns={"t": "description", "mixed": "price"}), openai_client, tmp_path)
    (job,) = batchframe.jobs(home=tmp_path)["job_id"]
    attached = batchframe.attach(job, home=tmp_path, progress=False).result()
    # A column Parquet cannot hold as one type is kept as its text (as for a whole frame).
    assert attached["price"].tolist() == [str(v) for v in values]
    pd.testing.assert_frame_equal(attached.drop(columns="price"), out.drop(columns="price"))


def test_chunked_anthropic_job(
    emulator: Emulator, anthropic_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BATCHFRAME_CHUNK_ROWS", "50")
    frame = catalog(360)
    out = frame.llm.batch(
        TEMPLATE,
        model="claude-haiku-4-5",
        client=anthropic_client,
        max_tokens=50,
        poll_interval=0.01,
        home=tmp_path,
    )
    assert out["output"].notna().sum() == len(frame) - 1
    assert emulator.stats()["duplicate_submissions"] == 0


def test_dry_run_and_to_jsonl_do_not_depend_on_chunking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = catalog()
    whole = frame.llm.batch(TEMPLATE, model="gpt-4o-mini", dry_run=True)
    frame.llm.to_jsonl(tmp_path / "whole.jsonl", TEMPLATE, model="gpt-4o-mini", chunk_size=7)

    monkeypatch.setenv("BATCHFRAME_CHUNK_ROWS", str(CHUNK))
    chunked = frame.llm.batch(TEMPLATE, model="gpt-4o-mini", dry_run=True)
    frame.llm.to_jsonl(tmp_path / "chunked.jsonl", TEMPLATE, model="gpt-4o-mini", chunk_size=7)

    assert chunked.to_dict() == whole.to_dict()
    assert chunked.input_tokens > 0
    lines = (tmp_path / "chunked.jsonl").read_bytes()
    assert lines == (tmp_path / "whole.jsonl").read_bytes()
    assert lines.count(b"\n") == 171


def test_pilot_answers_are_found_in_a_chunked_job(
    emulator: Emulator, openai_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BATCHFRAME_CHUNK_ROWS", str(CHUNK))
    frame = catalog().drop(index="sku/7 é")
    trial = frame.llm.pilot(TEMPLATE, model="gpt-4o-mini", n=6, client=openai_client, home=tmp_path)
    assert trial.answers["output"].notna().all()
    assert emulator.stats()["realtime_calls"] == 6

    out = run(frame, openai_client, tmp_path)
    assert out["output"].notna().sum() == len(frame) - 1
    # The pilot's six answers are part of the job; only the other 164 go into the batch.
    assert emulator.stats()["requests_submitted"] == 170 - 6


def test_missing_values_are_counted_over_every_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHFRAME_CHUNK_ROWS", "10")
    frame = pd.DataFrame({"t": ["x"] * 95})
    frame.loc[[12, 40, 90], "t"] = None
    with pytest.raises(InputError, match=r"'t' has 3 missing value\(s\), the first at row 12"):
        frame.llm.batch("{t}", model="gpt-4o-mini", dry_run=True, on_missing="raise")


def test_spill_files_of_dead_processes_are_swept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    staging = tmp_path / "staging"
    staging.mkdir()
    left = staging / f"requests-{dead.stdout.strip()}-abcd.arrow"
    left.write_bytes(b"half a file")
    frame = pd.DataFrame({"t": [f"row {i}" for i in range(30)]})
    spec = RequestSpec(provider="openai", model="gpt-4o-mini", roles=("user",))
    prepared = prepare(
        frame,
        spec,
        [parse("{t}", frame.columns)],
        labels={"t": "t"},
        on_missing="row_error",
        chunk_rows=8,
        spill_dir=staging,
    )
    assert not left.exists()
    (spill,) = staging.iterdir()  # this process's own spill file, alive while it is used
    assert prepared.requests.spilled
    assert oct(spill.stat().st_mode & 0o777) == oct(0o600)
    prepared.requests.discard()
    assert list(staging.iterdir()) == []


def test_requests_whose_first_hash_collides_stay_apart() -> None:
    seen = _SeenRequests()
    h1 = np.array([5, 5, 9], dtype=np.uint64)
    keys, new = seen.assign(h1, np.array([1, 2, 3], dtype=np.uint64), next_key=0)
    assert keys.tolist() == [0, 1, 2] and new.all()
    # The next chunk: a repeat of each, one unseen request sharing h1 = 5, one brand new.
    keys, new = seen.assign(
        np.array([5, 5, 5, 9, 7], dtype=np.uint64),
        np.array([2, 1, 4, 3, 8], dtype=np.uint64),
        next_key=3,
    )
    assert keys.tolist() == [1, 0, 3, 2, 4]
    assert new.tolist() == [False, False, True, False, True]


@pytest.mark.parametrize("bad", ["0", "-5", "many"])
def test_a_bad_chunk_size_is_named(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHFRAME_CHUNK_ROWS", bad)
    frame = pd.DataFrame({"t": ["x"]})
    with pytest.raises(ConfigurationError, match="BATCHFRAME_CHUNK_ROWS"):
        frame.llm.batch("{t}", model="gpt-4o-mini", dry_run=True)
