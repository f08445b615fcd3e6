"""The Estimate a dry run returns: its numbers, budget helpers and reprs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from batchframe.estimate import Estimate, build_estimate, lookup
from batchframe.estimate.prices import clear_prices, set_price
from batchframe.estimate.tokens import TokenCount, count_chat_tokens

REVIEWS = pd.Series(["Great product!", "Awful, broke in a day.", "Great product!", "meh"])
MESSAGES = [("system", ["Answer with one word."]), ("user", REVIEWS)]


@pytest.fixture(autouse=True)
def clean_prices(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("BATCHFRAME_PRICES", raising=False)
    clear_prices()
    yield
    clear_prices()


def _estimate(model: str = "gpt-4o-mini", **kw: object) -> Estimate:
    args: dict[str, object] = {
        "model": model,
        "provider": "anthropic" if model.startswith("claude") else "openai",
        "rows": 5,
        "requests": 4,
        "shards": 1,
        "messages": MESSAGES,
        "max_output_tokens": 16,
        "samples": ["Classify: Great product!", "Classify: <b>Awful</b> & worse"],
    }
    args.update(kw)
    return build_estimate(**args)  # type: ignore[arg-type]


def test_fields_for_a_priced_openai_model() -> None:
    est = _estimate()
    count = count_chat_tokens("gpt-4o-mini", MESSAGES)
    price = lookup("gpt-4o-mini")
    assert price is not None
    assert (est.model, est.provider, est.rows, est.requests, est.shards) == (
        "gpt-4o-mini",
        "openai",
        5,
        4,
        1,
    )
    assert est.input_tokens == count.total
    assert est.input_tokens_exact is True
    assert est.input_tokens_method == "o200k_base, exact"
    assert est.output_tokens == 16 * 4
    assert est.output_bound_source == "max_tokens=16"
    assert est.cost == pytest.approx(price.batch_cost(count.total, 64))
    assert est.realtime_cost == pytest.approx(2 * est.cost)
    assert est.savings == pytest.approx(est.realtime_cost - est.cost)
    assert est.output_tokens_expected is None and est.cost_expected is None
    assert est.price_date == "2026-11-23"
    assert est.price_source == "secondary"


def test_model_maximum_bounds_output_without_max_tokens() -> None:
    est = _estimate(max_output_tokens=None)
    assert est.output_tokens == 16_384 * 4
    assert est.output_bound_source == "model maximum 16,384 (no max_tokens set)"


def test_unbounded_output_gives_no_cost() -> None:
    est = _estimate("gpt-6-sol", max_output_tokens=None)
    assert est.output_tokens is None
    assert est.cost is None and est.realtime_cost is None
    assert any("max_tokens" in note for note in est.notes)
    assert not est.fits(1e9)


def test_expected_output_and_pilot_refinement() -> None:
    est = _estimate(expected_output_tokens=2.0)
    price = lookup("gpt-4o-mini")
    assert price is not None
    assert est.output_tokens_expected == 8
    assert est.cost_expected == pytest.approx(price.batch_cost(est.input_tokens, 8))
    assert est.cost is not None and est.cost_expected < est.cost

    plain = _estimate()
    refined = plain.with_output_tokens(2.0)
    assert refined.output_tokens_expected == 8
    assert refined.cost_expected == pytest.approx(est.cost_expected)
    assert refined.cost == plain.cost
    assert plain.cost_expected is None  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.cost = 0.0  # type: ignore[misc]


def test_fits_and_rows_within() -> None:
    est = _estimate()
    assert est.cost is not None
    assert est.fits(est.cost)
    assert not est.fits(est.cost * 0.99)
    assert est.rows_within(est.cost) == 5
    assert est.rows_within(est.cost * 0.5) == 2  # floor(5 * 0.5)
    assert est.rows_within(est.cost * 0.39) == 1
    assert est.rows_within(0) == 0


def test_unpriced_model_is_unknown_never_free() -> None:
    est = _estimate("gpt-9-nova")
    assert est.cost is None and est.realtime_cost is None and est.savings is None
    assert est.cost_expected is None
    assert est.price_source == "unpriced"
    assert est.input_tokens_exact is False
    assert not est.fits(1_000_000)
    assert est.rows_within(1_000_000) == 0
    assert any("unknown" in note.lower() for note in est.notes)
    assert any("no published tokenizer" in note for note in est.notes)
    assert "unknown" in repr(est)
    assert "unknown" in est._repr_html_()
    assert "$0" not in repr(est)


def test_set_price_prices_a_previously_unknown_model() -> None:
    set_price("gpt-9-nova", input=1.0, output=2.0)
    est = _estimate("gpt-9-nova")
    assert est.cost == pytest.approx((est.input_tokens * 1.0 + 64 * 2.0) / 1e6 / 2)
    assert est.price_source == "override"


def test_tokenizer_notes() -> None:
    sol = _estimate("gpt-6-sol")
    expected = "gpt-6-sol has no published tokenizer; counted with o200k_base"
    assert any(note.startswith(expected) for note in sol.notes)
    claude = _estimate("claude-sonnet-5-5")
    assert claude.input_tokens_method == "o200k_base × 1.30, ±15 %"
    assert claude.input_tokens_exact is False
    assert any("Claude" in note for note in claude.notes)
    assert claude.price_source == "verified"


def test_long_prompts_use_the_higher_band() -> None:
    per_request = np.array([1_000, 150_000], dtype=np.int64)
    count = TokenCount(
        per_request=per_request,
        total=int(per_request.sum()),
        encoding="o200k_base",
        exact=False,
        relative_error=0.15,
        method="given",
    )
    est = _estimate("claude-haiku-5-5", requests=2, token_count=count, max_output_tokens=100)
    base = lookup("claude-haiku-5-5")
    assert base is not None
    expected = base.batch_cost(1_000, 100) + base.band(150_000).batch_cost(150_000, 100)
    assert est.cost == pytest.approx(expected)
    assert est.realtime_cost == pytest.approx(2 * expected)
    assert any("higher price band" in note for note in est.notes)


def test_repr_shows_the_key_numbers() -> None:
    est = _estimate(rows=12_345, expected_output_tokens=3)
    text = repr(est)
    assert str(est) == text
    for fragment in (
        "gpt-4o-mini",
        "12,345 → 4",
        f"{est.input_tokens:,}",
        "o200k_base, exact",
        "≤ 64",
        "max_tokens=16",
        "expected",
        "2026-11-23",
        "Classify: Great product!",
    ):
        assert fragment in text, fragment
    assert "$" in text and "saves" in text
    assert len(text.splitlines()) < 20


def test_samples_are_truncated_and_escaped() -> None:
    long_prompt = "x" * 1_000
    est = _estimate(samples=["<b>bold</b> & co", long_prompt, "third", "fourth"])
    text = repr(est)
    assert "x" * 199 in text and "x" * 201 not in text
    assert "fourth" not in text  # at most three samples
    html = est._repr_html_()
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html
    assert "<b>bold" not in html
    assert "<style" not in html and "<script" not in html
    assert "2026-11-23" in html and "max_tokens=16" in html


def test_to_dict_is_plain_and_json_ready() -> None:
    d = _estimate().to_dict()
    assert not any(key.startswith("_") for key in d)
    assert d["requests"] == 4 and d["output_tokens"] == 64
    assert isinstance(d["samples"], list)
    json.dumps(d)
