"""Secrets stay out of everything we write or show; the store is private; templates are data."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pandas as pd
import pytest

import batchframe
from batchframe.emulator import Emulator

SECRET = "sk-proj-SECRET-do-not-store-4f9a2c"


def _scan(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5"])
def test_api_key_never_reaches_store_logs_or_reprs(
    emulator: Emulator,
    batchframe_home: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    model: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    # The SDK is built from the environment, as a user's would be.
    if model.startswith("gpt"):
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        monkeypatch.setenv("OPENAI_BASE_URL", emulator.openai_base_url)
    else:
        monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.anthropic_base_url)
    df = pd.DataFrame({"text": ["a", "b EMU:400", "c"]})

    estimate = df.llm.batch("Echo {text}", model=model, max_tokens=20, dry_run=True)
    job = df.llm.batch("Echo {text}", model=model, max_tokens=20, wait=False, usage=True)
    assert isinstance(job, batchframe.BatchJob)
    out = job.result()
    df.llm.to_jsonl(tmp_path / "requests.jsonl", "Echo {text}", model=model, max_tokens=20)

    shown = [
        repr(estimate),
        estimate._repr_html_(),
        repr(job),
        job._repr_html_(),
        repr(job.status()),
        repr(job.summary()),
        repr(batchframe.jobs()),
        out.to_string(),
        caplog.text,
        *capsys.readouterr(),
    ]
    assert not [text for text in shown if SECRET in text]
    assert _scan(batchframe_home) == []
    assert _scan(tmp_path) == []
    assert out["output"].notna().sum() == 2  # the job really ran with that key


def test_store_is_private_to_its_owner(
    emulator: Emulator, openai_client, batchframe_home: Path
) -> None:
    pd.DataFrame({"text": ["a", "b"]}).llm.batch(
        "{text}", model="gpt-4o-mini", client=openai_client
    )
    paths = [batchframe_home, *batchframe_home.rglob("*")]
    assert len(paths) > 5
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


@pytest.mark.parametrize(
    "template",
    ["{text.__class__}", "{text[0]}", "{text!r}", "{text:>10}", "{0}", "{}"],
)
def test_templates_cannot_reach_into_objects(template: str) -> None:
    df = pd.DataFrame({"text": ["a"]})
    with pytest.raises(batchframe.TemplateError) as caught:
        df.llm.batch(template, model="gpt-4o-mini", dry_run=True)
    assert "column" in str(caught.value)


def test_values_with_braces_are_literal_text(emulator: Emulator, openai_client) -> None:
    df = pd.DataFrame({"text": ["{text.__class__}", "{0}", "}{"]})
    out = df.llm.batch("Echo {text}", model="gpt-4o-mini", client=openai_client)
    assert list(out["output"]) == ["echo: Echo {text.__class__}", "echo: Echo {0}", "echo: Echo }{"]


def test_emulator_binds_to_loopback_only() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        Emulator(host="0.0.0.0")
