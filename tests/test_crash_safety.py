"""Kill a real process at each write-ahead point (and at random), resume in a new one.

Each case must end with every row filled and the emulator's counters showing no duplicate
upload, batch or row submission (design.md, invariants 1-3).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from batchframe.crashpoints import POINTS
from batchframe.emulator import Emulator

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import pandas as pd
    import batchframe

    provider, url = sys.argv[1], sys.argv[2]
    texts = [f"row {i}: {{x}} ü" for i in range(22)] + ["same", "same", "blip EMU:500"]
    df = pd.DataFrame({"text": texts}, index=pd.Index([f"k {i}" for i in range(25)]))
    if provider == "openai":
        import openai
        client = openai.OpenAI(base_url=url, api_key="emulator-key", max_retries=0)
        model = "gpt-4o-mini"
    else:
        import anthropic
        client = anthropic.Anthropic(base_url=url, api_key="emulator-key", max_retries=0)
        model = "claude-haiku-4-5"
    out = df.llm.batch("Echo {text}", model=model, client=client, max_tokens=50)
    print(json.dumps({
        "rows": len(out),
        "answered": int(out["output"].notna().sum()),
        "empty": int((out["output"].isna() & out["output_error"].isna()).sum()),
        "index_ok": bool(out.index.equals(df.index)),
    }))
    """
)

UNIQUE_REQUESTS = 24  # 25 rows, two identical prompts


def _start(
    script: Path, provider: str, url: str, home: Path, crash_at: str | None
) -> subprocess.Popen[str]:
    env = {**os.environ, "BATCHFRAME_HOME": str(home), "BATCHFRAME_POLL_INTERVAL": "0.05"}
    env.pop("BATCHFRAME_CRASH_AT", None)
    if crash_at:
        env["BATCHFRAME_CRASH_AT"] = crash_at
    return subprocess.Popen(
        [sys.executable, str(script), provider, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _base_url(emu: Emulator, provider: str) -> str:
    return emu.openai_base_url if provider == "openai" else emu.anthropic_base_url


def _finish_and_check(script: Path, provider: str, emu: Emulator, home: Path) -> None:
    rerun = _start(script, provider, _base_url(emu, provider), home, None)
    out, err = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"rows": 25, "answered": 25, "empty": 0, "index_ok": True}, result

    stats = emu.stats()
    # One batch for the job, one for the EMU:500 row's second attempt. Nothing else.
    assert stats["batches_created"] == 2, stats["batch_ids"]
    assert stats["requests_submitted"] == UNIQUE_REQUESTS + 1
    assert stats["duplicate_submissions"] == 0
    assert max(stats["submissions_by_body"].values()) == 2
    if provider == "openai":
        assert stats["uploads"] == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("point", POINTS)
def test_kill_at_each_write_ahead_point(
    tmp_path: Path, batchframe_home: Path, provider: str, point: str
) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    with Emulator(processing_seconds=0.3, seed=11) as emu:
        crashed = _start(script, provider, _base_url(emu, provider), batchframe_home, point)
        _, err = crashed.communicate(timeout=180)
        assert crashed.returncode == -signal.SIGKILL, f"never reached {point}: {err}"
        _finish_and_check(script, provider, emu, batchframe_home)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_random_kills_then_resume(tmp_path: Path, batchframe_home: Path, provider: str) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    rng = random.Random(provider)
    with Emulator(processing_seconds=0.5, seed=5) as emu:
        for _ in range(4):
            proc = _start(script, provider, _base_url(emu, provider), batchframe_home, None)
            time.sleep(rng.uniform(0.3, 2.0))
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
        _finish_and_check(script, provider, emu, batchframe_home)
