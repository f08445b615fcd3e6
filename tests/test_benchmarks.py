"""The benchmark code runs, on tiny inputs, and compares like with like.

No timings are asserted here: speed is what ``python -m benchmarks`` reports. These tests
check that every stage runs for batchframe and for the baseline, that both write the same
request bodies and join the same values, and that the report is produced.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import data, run, stages  # noqa: E402

from batchframe.emulator import Emulator  # noqa: E402

ROWS = 300


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-data")


def test_inputs_are_deterministic_and_distinct(bench_dir: Path) -> None:
    frame = data.load_catalog(ROWS, bench_dir)
    assert len(frame) == ROWS
    assert frame["sku"].is_unique
    again = data.catalog(ROWS)
    assert frame.reset_index(drop=True).astype(str).equals(again.astype(str))
    out, err = data.result_paths(ROWS, bench_dir)
    ids = [json.loads(line)["custom_id"] for p in (out, err) for line in p.open()]
    assert len(ids) > ROWS  # duplicates and unknown ids included
    assert {f"r{i}" for i in range(ROWS)} <= set(ids)


def test_prepare_writes_the_same_request_bodies(bench_dir: Path, tmp_path: Path) -> None:
    frame = data.load_catalog(ROWS, bench_dir)
    ours, theirs = tmp_path / "bf.jsonl", tmp_path / "base.jsonl"
    stages.prepare_batchframe(frame, ours)
    stages.prepare_baseline(frame, theirs)
    bodies = stages.request_bodies(ours)
    assert len(bodies) == ROWS
    assert bodies == stages.request_bodies(theirs)


def test_parse_and_join_give_the_same_values(bench_dir: Path, tmp_path: Path) -> None:
    frame = data.load_catalog(ROWS, bench_dir)
    paths = data.result_paths(ROWS, bench_dir)
    ours = stages.joined_batchframe(frame, paths, tmp_path)
    theirs = stages.joined_baseline(frame, paths)
    assert run._values(ours["output"]) == run._values(theirs["output"])
    assert (ours["output_error"].notna() == theirs["output_error"].notna()).all()
    assert ours["output"].notna().sum() > ROWS * 0.9
    # Every row has exactly one of answer and error.
    assert (ours["output"].notna() ^ ours["output_error"].notna()).all()


def test_token_counts_agree(bench_dir: Path) -> None:
    frame = data.load_catalog(ROWS, bench_dir)
    enc = stages.encoding()
    assert stages.tokens_batchframe(frame) == stages.tokens_baseline(frame, enc)
    unique = list(dict.fromkeys(stages.rendered_prompts(frame)))
    import pyarrow as pa

    counted = stages.tokens_count_only(
        [("system", data.SYSTEM), ("user", pa.array(unique, pa.large_string()))]
    )
    assert counted["input_tokens"] > stages.tokens_tokenizer_batch(enc, unique)["content_tokens"]


def test_end_to_end_on_the_emulator(bench_dir: Path, tmp_path: Path) -> None:
    frame = data.load_catalog(ROWS, bench_dir)
    with Emulator(processing_seconds=0) as emu:
        ours = stages.e2e_batchframe(frame, emu.openai_base_url, tmp_path / "home")
        theirs = stages.e2e_baseline(frame, emu.openai_base_url, tmp_path)
    assert ours == theirs == {"answered": ROWS, "rows": ROWS}


@pytest.mark.slow
def test_worker_processes_report(bench_dir: Path, tmp_path: Path) -> None:
    """Each stage through its own process, as the runner does it."""
    for stage in ("prepare", "tokens", "parse_join"):
        for impl in ("batchframe", "baseline"):
            result = run.worker(stage, impl, ROWS, bench_dir, tmp_path / f"{stage}-{impl}")
            assert "error" not in result, result
            assert result["seconds"] > 0 and result["peak_mb"] > 0


def test_report_has_every_stage(bench_dir: Path, tmp_path: Path) -> None:
    """The whole runner at a tiny size, without peers: tables, ratios, checks, files."""
    out = tmp_path / "out"
    code = run.main(
        [
            "--sizes",
            str(ROWS),
            "--e2e-rows",
            str(ROWS),
            "--scale-rows",
            str(ROWS),
            "--repeats",
            "1",
            "--no-peers",
            "--data-dir",
            str(bench_dir),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    text = (out / "results.md").read_text()
    for stage in ("prepare", "tokens", "parse_join"):
        assert run.STAGE_TITLES[stage] in text
    assert f"End to end at {ROWS} rows on the emulator" in text
    assert "request bodies identical: yes" in text
    assert "joined answers identical: yes" in text
    report = json.loads((out / "results.json").read_text())
    stages_seen = {row["stage"] for row in report["summary"]}
    assert {"prepare", "tokens", "parse_join", "tokens_vs_tokenizer", "e2e", "scale"} <= stages_seen
    assert f"Scale: `to_jsonl` of {ROWS:,} catalog rows" in text
    assert not [r for r in report["runs"] if "error" in r]
