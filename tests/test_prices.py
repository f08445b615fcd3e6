"""The dated price table: lookup rules, batch = half, and user overrides."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from batchframe.errors import ConfigurationError
from batchframe.estimate import prices
from batchframe.estimate.prices import (
    RATE_FIELDS,
    Price,
    clear_prices,
    known_models,
    lookup,
    set_price,
    table_date,
)


@pytest.fixture(autouse=True)
def clean_overrides(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(prices.ENV_VAR, raising=False)
    clear_prices()
    yield
    clear_prices()


def _shipped_doc() -> dict:
    text = resources.files("batchframe").joinpath("data", "prices.json").read_text("utf-8")
    return json.loads(text)


# Every row of providers.md section 3 (as of 2026-11-23): model -> (input, output).
EXPECTED = {
    "gpt-6-astra": (10.00, 50.00),
    "gpt-6.1-sol": (2.00, 10.00),
    "gpt-6-sol": (2.00, 10.00),
    "gpt-6-luna": (0.10, 0.50),
    "gpt-6.1-terra": (1.00, 5.00),
    "gpt-5.6-sol": (5.00, 30.00),
    "gpt-5.6-terra": (2.00, 12.00),
    "gpt-5.6-luna": (0.20, 1.20),
    "gpt-5.5": (5.00, 30.00),
    "gpt-5.4": (2.50, 15.00),
    "gpt-5.4-mini": (0.75, 4.50),
    "gpt-5.4-nano": (0.20, 1.25),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "claude-opus-5-5": (4.00, 20.00),
    "claude-sonnet-5-5": (2.00, 10.00),
    "claude-haiku-5-5": (0.10, 0.50),
    "claude-fable-5-2": (8.00, 40.00),
    "claude-fable-5-1": (10.00, 50.00),
    "claude-opus-5": (5.00, 25.00),
    "claude-sonnet-5": (2.00, 10.00),
    "claude-opus-4-5": (5.00, 25.00),
    "claude-opus-4-6": (5.00, 25.00),
    "claude-opus-4-7": (5.00, 25.00),
    "claude-opus-4-8": (5.00, 25.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-sonnet-4-6": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
}


def test_table_is_dated_and_complete() -> None:
    doc = _shipped_doc()
    assert table_date() == doc["as_of"] == "2026-11-23"
    assert doc["batch_discount"] == 0.5
    assert set(doc["models"]) == set(EXPECTED)
    for name, (inp, out) in EXPECTED.items():
        price = lookup(name)
        assert price is not None, name
        assert (price.input, price.output) == (inp, out), name
        assert price.source in {"verified", "secondary", "derived"}, name
        assert price.as_of == "2026-11-23"


def test_each_provider_keeps_its_own_explicit_rates() -> None:
    for name, entry in _shipped_doc()["models"].items():
        if entry["provider"] == "openai":
            assert "cached_input" in entry, name
            assert "cache_read" not in entry, name
        else:
            assert entry["provider"] == "anthropic", name
            assert {"cache_read", "cache_write_5m", "cache_write_1h"} <= set(entry), name
    sonnet = lookup("claude-sonnet-5-5")
    assert sonnet is not None
    assert (sonnet.cache_write_5m, sonnet.cache_write_1h, sonnet.cache_read) == (2.5, 4.0, 0.1)


def test_embeddings_are_absent_not_free() -> None:
    assert lookup("text-embedding-3-small") is None
    assert lookup("text-embedding-3-large") is None


@pytest.mark.parametrize(
    ("asked", "found"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("GPT-4o-Mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-5.4-mini-2026-03-17", "gpt-5.4-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("gpt-4o-mini-search-preview", "gpt-4o-mini"),
        ("gpt-5-codex", "gpt-5"),
        ("gpt-6-sol-pro-2026-10-01", "gpt-6-sol"),
    ],
)
def test_lookup_exact_dated_and_prefix(asked: str, found: str) -> None:
    price = lookup(asked)
    assert price is not None
    assert price.model == found


@pytest.mark.parametrize(
    "model",
    ["", "gpt-7", "claude-opus-5-7", "gpt-5.7-sol", "gpt-4", "claude-3-opus", "mistral-large"],
)
def test_unknown_models_are_unpriced(model: str) -> None:
    assert lookup(model) is None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_batch_is_half_of_realtime(name: str) -> None:
    price = lookup(name)
    assert price is not None
    realtime = price.realtime_cost(1_000_000, 200_000, cached_tokens=300_000)
    assert price.batch_cost(1_000_000, 200_000, cached_tokens=300_000) == pytest.approx(
        realtime / 2
    )


def test_cost_arithmetic() -> None:
    mini = lookup("gpt-4o-mini")
    assert mini is not None
    assert mini.realtime_cost(1_000_000, 1_000_000) == pytest.approx(0.15 + 0.60)
    assert mini.batch_cost(2_000_000, 0) == pytest.approx(0.15)
    # Batch halves cached input too (providers.md 3.1: Terra 0.025, Astra 0.50).
    terra, astra = lookup("gpt-6.1-terra"), lookup("gpt-6-astra")
    assert terra is not None and astra is not None
    assert terra.batch_cost(1_000_000, 0, cached_tokens=1_000_000) == pytest.approx(0.025)
    assert astra.batch_cost(1_000_000, 0, cached_tokens=1_000_000) == pytest.approx(0.50)
    # Anthropic cache reads use cache_read.
    opus = lookup("claude-opus-5-5")
    assert opus is not None
    assert opus.realtime_cost(1_000_000, 0, cached_tokens=1_000_000) == pytest.approx(0.20)
    # No published cache rate: charged at the input rate, an upper bound.
    fable = lookup("claude-fable-5-2")
    assert fable is not None and fable.cache_read is None
    assert fable.realtime_cost(1_000_000, 0, cached_tokens=1_000_000) == pytest.approx(8.0)


def test_haiku_long_prompt_band() -> None:
    haiku = lookup("claude-haiku-5-5")
    assert haiku is not None
    assert haiku.band(100_000) is haiku
    long = haiku.band(100_001)
    assert (long.input, long.output, long.cache_read) == (0.50, 2.50, 0.05)
    assert (long.cache_write_5m, long.cache_write_1h) == (0.625, 1.00)
    assert long.batch_cost(1_000_000, 0) == pytest.approx(0.25)


def test_gpt6_long_context_band() -> None:
    sol = lookup("gpt-6-sol")
    assert sol is not None
    long = sol.band(272_001)
    assert (long.input, long.cached_input, long.output) == (4.0, 0.4, 15.0)
    assert sol.band(272_000) is sol


def test_max_output_tokens_where_known() -> None:
    assert lookup("gpt-4o-mini").max_output_tokens == 16_384  # type: ignore[union-attr]
    assert lookup("gpt-6-sol").max_output_tokens is None  # type: ignore[union-attr]


def test_set_price_for_a_new_model() -> None:
    assert lookup("my-finetune") is None
    price = set_price("my-finetune", input=1.0, output=4.0, provider="openai")
    assert isinstance(price, Price)
    assert lookup("my-finetune") == price
    assert price.batch_cost(1_000_000, 1_000_000) == pytest.approx(2.5)
    assert price.source == "override"
    assert "my-finetune" in known_models()
    clear_prices()
    assert lookup("my-finetune") is None


def test_set_price_on_a_known_model_inherits_the_rest() -> None:
    set_price("gpt-4o-mini", output=1.0)
    price = lookup("gpt-4o-mini-2024-07-18")
    assert price is not None
    assert (price.input, price.cached_input, price.output) == (0.15, 0.075, 1.0)
    assert price.max_output_tokens == 16_384


def test_set_price_needs_both_rates_for_a_new_model() -> None:
    with pytest.raises(ConfigurationError, match="output"):
        set_price("brand-new", input=1.0)
    assert lookup("brand-new") is None  # nothing half-registered
    with pytest.raises(ConfigurationError, match="USD per million"):
        set_price("brand-new", input=-1.0, output=2.0)


def _write(path: Path, models: dict, **top: object) -> Path:
    path.write_text(json.dumps({**top, "models": models}), encoding="utf-8")
    return path


def test_env_file_overrides_and_is_read_at_call_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "prices.json",
        {"gpt-4o-mini": {"input": 0.1, "output": 0.4}, "local-llm": {"input": 0, "output": 0}},
        as_of="2027-01-01",
    )
    monkeypatch.setenv(prices.ENV_VAR, str(path))
    mini = lookup("gpt-4o-mini")
    assert mini is not None
    assert (mini.input, mini.output, mini.as_of) == (0.1, 0.4, "2027-01-01")
    assert mini.cached_input == 0.075  # inherited from the shipped entry
    assert lookup("local-llm") is not None

    # Rewritten file: the next call sees it.
    _write(path, {"gpt-4o-mini": {"input": 0.2, "output": 0.8}})
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse filesystems
    assert lookup("gpt-4o-mini").input == 0.2  # type: ignore[union-attr]
    assert lookup("local-llm") is None

    # set_price beats the file; unsetting the variable restores the shipped table.
    set_price("gpt-4o-mini", input=0.3)
    assert lookup("gpt-4o-mini").input == 0.3  # type: ignore[union-attr]
    clear_prices()
    monkeypatch.delenv(prices.ENV_VAR)
    assert lookup("gpt-4o-mini").input == 0.15  # type: ignore[union-attr]


def test_bad_env_file_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(prices.ENV_VAR, str(tmp_path / "missing.json"))
    with pytest.raises(ConfigurationError, match=r"missing\.json"):
        lookup("gpt-4o")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    monkeypatch.setenv(prices.ENV_VAR, str(bad))
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        lookup("gpt-4o")
    _write(bad, {"gpt-4o": {"input": "cheap", "output": 1}})
    with pytest.raises(ConfigurationError, match="input"):
        lookup("gpt-4o")


def test_lookup_overrides_argument() -> None:
    price = lookup("gpt-4o", overrides={"gpt-4o": {"input": 1.0}})
    assert price is not None and (price.input, price.output) == (1.0, 10.0)
    mine = Price(model="x", input=3.0, output=6.0)
    assert lookup("x-2025-01-01", overrides={"x": mine}).input == 3.0  # type: ignore[union-attr]
    assert lookup("gpt-4o").input == 2.5  # type: ignore[union-attr]  # call-scoped only


def test_rate_fields_cover_the_json() -> None:
    allowed = {*RATE_FIELDS, "provider", "max_output_tokens", "source", "note", "tiers"}
    for entry in _shipped_doc()["models"].values():
        assert set(entry) <= allowed
