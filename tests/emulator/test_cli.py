"""`python -m batchframe.emulator`: starts, answers HTTP, stops cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
import pytest
from emu_helpers import chat_line, jsonl

START_TIMEOUT = 30.0


@contextmanager
def serve(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run the emulator in a child process; yield (process, base url)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchframe.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # The first line names the address; wait for it without risking a blocked readline.
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
        line = proc.stdout.readline() if ready else ""
        url = line.rsplit(" ", 1)[1].strip() if "listening on " in line else ""
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_starts_answers_and_stops_on_signal(sig: signal.Signals) -> None:
    with serve("--processing-seconds", "0") as (proc, url):
        assert _get(url + "/_emulator/stats")["batches_created"] == 0
        client = openai.OpenAI(base_url=url + "/v1", api_key="anything", max_retries=0)
        f = client.files.create(file=("in.jsonl", jsonl([chat_line("a", "hi")])), purpose="batch")
        batch = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed"
        assert "echo: hi" in client.files.content(str(done.output_file_id)).text
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()


def test_prints_the_base_urls_for_both_sdks() -> None:
    with serve() as (proc, url):
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        assert lines == [f"OPENAI_BASE_URL={url}/v1", f"ANTHROPIC_BASE_URL={url}"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_faults_option(tmp_path: Any) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"fail_validation": 2, "row_error_rate": 0.5}))
    with serve("--faults", f"@{plan}", "--seed", "5") as (proc, url):
        faults = _get(url + "/_emulator/faults")
        assert faults["fail_validation"] == 2 and faults["row_error_rate"] == 0.5
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    with serve("--faults", '{"expire_batches": 1}') as (proc, url):
        assert _get(url + "/_emulator/faults")["expire_batches"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchframe.emulator", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--port", "0", "--faults", '{"nope": 1}'], "nope"),
        (["--port", "0", "--faults", "@/nonexistent/plan.json"], "--faults"),
        (["--port", "70000"], "port"),
        (["--port", "0", "--processing-seconds", "-1"], "processing_seconds"),
    ],
)
def test_bad_arguments_exit_with_a_usage_error(args: list[str], needle: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_a_busy_port_is_reported_without_a_traceback() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = _run("--port", str(busy.getsockname()[1]))
    assert result.returncode == 1
    assert "cannot listen" in result.stderr
    assert "Traceback" not in result.stderr
