"""The `batchframe` command, as a scheduled job runs it: a real subprocess, env-configured SDK."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from batchframe.emulator import Emulator

pytestmark = pytest.mark.slow


def _cli(
    args: list[str], emu: Emulator, home: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "BATCHFRAME_HOME": str(home),
        "OPENAI_BASE_URL": emu.openai_base_url,
        "OPENAI_API_KEY": "sk-test-secret-value",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "batchframe.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


@pytest.fixture
def tickets_csv(tmp_path: Path) -> Path:
    path = tmp_path / "tickets.csv"
    pd.DataFrame(
        {"id": ["a", "b", "c", "d"], "body": ["late parcel", "refund?", "EMU:400 bad", "refund?"]}
    ).to_csv(path, index=False)
    return path


def test_run_is_idempotent_and_writes_the_joined_file(
    emulator: Emulator, tickets_csv: Path, tmp_path: Path, batchframe_home: Path
) -> None:
    out = tmp_path / "out.parquet"
    args = ["run", str(tickets_csv), "--template", "Label: {body}", "--model", "gpt-4o-mini"]
    first = _cli([*args, "--out", str(out)], emulator, batchframe_home)
    assert first.returncode == 0, first.stderr
    frame = pd.read_parquet(out)
    assert list(frame["output"].isna()) == [False, False, True, False]
    assert frame.loc[2, "output_error"].startswith("emulator_400")
    assert "3 rows answered, 1 with errors" in first.stderr

    strict = _cli([*args, "--strict"], emulator, batchframe_home)
    assert strict.returncode == 1  # the stored job has a row error
    assert emulator.stats()["batches_created"] == 1  # ...and was not run again

    # The key never reaches the store.
    for path in batchframe_home.rglob("*"):
        if path.is_file():
            assert b"sk-test-secret-value" not in path.read_bytes(), path


def test_no_wait_then_wait_and_result(
    emulator: Emulator, tickets_csv: Path, tmp_path: Path, batchframe_home: Path
) -> None:
    args = ["run", str(tickets_csv), "--template", "{body}", "--model", "gpt-4o-mini", "--no-wait"]
    started = _cli(args, emulator, batchframe_home)
    assert started.returncode == 0, started.stderr
    assert emulator.stats()["batches_created"] == 1
    job_id = started.stderr.split("job ", 1)[1].split()[0]

    listed = _cli(["jobs"], emulator, batchframe_home)
    assert job_id in listed.stdout

    waited = _cli(["wait", job_id], emulator, batchframe_home)
    assert waited.returncode == 0, waited.stderr
    out = tmp_path / "result.csv"
    result = _cli(["result", job_id, "--out", str(out)], emulator, batchframe_home)
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(out)["output"].notna().sum() == 3


def test_bad_input_exits_2_naming_the_problem(
    emulator: Emulator, tickets_csv: Path, batchframe_home: Path
) -> None:
    bad = _cli(
        ["run", str(tickets_csv), "--template", "{nope}", "--model", "gpt-4o-mini"],
        emulator,
        batchframe_home,
    )
    assert bad.returncode == 2
    assert "nope" in bad.stderr and "body" in bad.stderr
    assert emulator.stats()["uploads"] == 0

    unknown = _cli(["status", "bf-nope"], emulator, batchframe_home)
    assert unknown.returncode == 1
    assert "bf-nope" in unknown.stderr


def test_dry_run_prints_the_estimate(
    emulator: Emulator, tickets_csv: Path, batchframe_home: Path
) -> None:
    done = _cli(
        ["run", str(tickets_csv), "--template", "{body}", "--model", "gpt-4o-mini", "--dry-run"],
        emulator,
        batchframe_home,
    )
    assert done.returncode == 0, done.stderr
    assert "4 → 3" in done.stdout
    assert sum(emulator.stats()["http_calls"].values()) == 0
