"""Fixtures for the emulator tests: one emulator per test, SDK clients that never retry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from emu_helpers import PROCESSING

from batchframe.emulator import Emulator


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(processing_seconds=PROCESSING, seed=11) as running:
        yield running


@pytest.fixture
def oai(emu: Emulator) -> Any:
    return emu.openai_client(max_retries=0)


@pytest.fixture
def ant(emu: Emulator) -> Any:
    return emu.anthropic_client(max_retries=0)
