"""Shared fixtures: a real emulator on loopback and a private batchframe home per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchframe.emulator import Emulator


@pytest.fixture(autouse=True)
def batchframe_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own store, fast polling and no progress output."""
    home = tmp_path / "bf-home"
    monkeypatch.setenv("BATCHFRAME_HOME", str(home))
    monkeypatch.setenv("BATCHFRAME_POLL_INTERVAL", "0.02")
    monkeypatch.setenv("BATCHFRAME_PROGRESS", "off")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    return home


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(processing_seconds=0.2, seed=7) as emu:
        yield emu


@pytest.fixture
def openai_client(emulator: Emulator):  # type: ignore[no-untyped-def]
    return emulator.openai_client(max_retries=0)


@pytest.fixture
def anthropic_client(emulator: Emulator):  # type: ignore[no-untyped-def]
    return emulator.anthropic_client(max_retries=0)
