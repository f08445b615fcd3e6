"""Kernels die and cells run twice: the store makes a re-run attach instead of paying again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

import batchframe
from batchframe.emulator import Emulator

pytestmark = pytest.mark.slow

# The same frame and call in every process: a re-run must find the job by its fingerprint.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import pandas as pd
    import openai
    import batchframe

    url, mode = sys.argv[1], sys.argv[2]
    df = pd.DataFrame(
        {"text": [f"row {i} {{braces}} ü" for i in range(30)] + ["again", "again"]},
        index=pd.Index([f"id/{i % 29}" for i in range(32)], name="id"),
    )
    client = openai.OpenAI(base_url=url, api_key="emulator-key", max_retries=0)
    if mode == "start":
        job = df.llm.batch("Echo {text}", model="gpt-4o-mini", client=client, wait=False)
        print(json.dumps({"job": job.id}), flush=True)
        time.sleep(600)  # the test kills us while the job is in flight
    else:
        out = df.llm.batch("Echo {text}", model="gpt-4o-mini", client=client)
        print(json.dumps({
            "rows": len(out),
            "answered": int(out["output"].notna().sum()),
            "errors": int(out["output_error"].notna().sum()),
            "index_ok": out.index.equals(df.index),
        }), flush=True)
    """
)


def _run(script: Path, url: str, mode: str, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "BATCHFRAME_HOME": str(home), "BATCHFRAME_PROGRESS": "off"}
    return subprocess.Popen(
        [sys.executable, str(script), url, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.mark.parametrize("kill_when", ["after_upload", "after_create"])
def test_killed_process_rerun_creates_exactly_one_batch(
    tmp_path: Path, batchframe_home: Path, kill_when: str
) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    with Emulator(processing_seconds=1.0, seed=3) as emu:
        url = emu.openai_base_url
        proc = _run(script, url, "start", batchframe_home)
        if kill_when == "after_upload":
            _wait_for(lambda: emu.stats()["uploads"] >= 1)
        else:
            _wait_for(lambda: emu.stats()["batches_created"] >= 1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

        rerun = _run(script, url, "rerun", batchframe_home)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        assert result == {"rows": 32, "answered": 32, "errors": 0, "index_ok": True}

        stats = emu.stats()
        assert stats["batches_created"] == 1, stats
        assert stats["requests_submitted"] == 31
        assert stats["duplicate_submissions"] == 0
        # An upload may be repeated only if the kill landed before its id was stored;
        # it is never turned into a second batch.
        assert stats["uploads"] <= 2


def test_attach_and_jobs_from_another_process(
    tmp_path: Path, emulator: Emulator, openai_client, batchframe_home: Path
) -> None:
    df = pd.DataFrame({"text": ["a", "b", "c"]})
    job = df.llm.batch("Echo {text}", model="gpt-4o-mini", client=openai_client, wait=False)
    job.wait(timeout=60)
    code = textwrap.dedent(
        f"""
        import batchframe, openai
        listed = batchframe.jobs()
        assert {job.id!r} in list(listed["job_id"]), listed
        client = openai.OpenAI(base_url={emulator.openai_base_url!r}, api_key="k", max_retries=0)
        out = batchframe.attach({job.id!r}, client=client).result()
        print(list(out["output"]))
        """
    )
    env = {**os.environ, "BATCHFRAME_HOME": str(batchframe_home)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['echo: Echo a', 'echo: Echo b', 'echo: Echo c']"


def test_status_wait_result_cancel_handle(emulator: Emulator, openai_client) -> None:
    df = pd.DataFrame({"text": [f"t{i}" for i in range(5)]})
    job = df.llm.batch("Echo {text}", model="gpt-4o-mini", client=openai_client, wait=False)
    assert isinstance(job, batchframe.BatchJob)
    snap = job.status()
    assert snap.job_id == job.id
    assert snap.rows == 5
    out = job.result()
    assert out["output"].notna().all()
    assert job.status().state == "finished"


def test_cancel_marks_every_unfinished_row(emulator: Emulator, openai_client) -> None:
    from batchframe.emulator import FaultPlan

    emulator.set_faults(FaultPlan(stall_batches=1))
    df = pd.DataFrame({"text": [f"t{i}" for i in range(6)]}, index=list("abcdef"))
    job = df.llm.batch("Echo {text}", model="gpt-4o-mini", client=openai_client, wait=False)
    _wait_for(lambda: emulator.stats()["batches_created"] == 1)
    job.cancel()
    out = job.result()
    assert out["output"].isna().all()
    assert out["output_error"].str.contains("cancel").all(), out["output_error"]
    assert emulator.stats()["cancels"] == 1
    # A cancelled job is not re-attached: the same call starts afresh.
    emulator.set_faults(FaultPlan())
    again = df.llm.batch("Echo {text}", model="gpt-4o-mini", client=openai_client)
    assert again["output"].notna().all()


def test_attach_gives_back_an_index_parquet_cannot_hold(emulator: Emulator, openai_client) -> None:
    index = pd.Index([("a", 1), 2, "x/y", ("a", 1)], tupleize_cols=False)
    df = pd.DataFrame({"text": ["p", "q", "r", "s"]}, index=index)
    job = df.llm.batch("Echo {text}", model="gpt-4o-mini", client=openai_client, wait=False)
    job.wait(timeout=60)
    # A new handle with no frame in memory, as in another process: the store alone.
    out = batchframe.attach(job.id, client=openai_client).result()
    assert list(out.index) == list(index)
    assert list(out["output"]) == ["echo: Echo p", "echo: Echo q", "echo: Echo r", "echo: Echo s"]
