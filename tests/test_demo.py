"""The README's first command: the demo runs on the bundled emulator without an API key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_runs_on_the_emulator() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "batchframe.demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "running on the bundled emulator" in out
    assert "Estimate for gpt-4o-mini" in out
    assert "T-1040" in out  # the joined frame is printed
    assert "40 answered, 0 errors" in out or "39 answered, 0 errors" in out
