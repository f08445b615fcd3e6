"""df.llm.batch(..., dry_run=True): every Estimate field, end to end, and that nothing is sent."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import batchframe
from batchframe.emulator import Emulator
from batchframe.estimate import Estimate, get_encoding, lookup, table_date
from batchframe.estimate.prices import clear_prices

MODEL = "gpt-4o-mini"
SYSTEM = "Answer with one word: positive, negative or neutral."
TEMPLATE = "Review of {product} ({price}): {review}"

PIECES = [
    "Great product!",
    "Awful, broke in a day.",
    "Café naïve façade — très bien",
    "日本語のレビュー、とても良い",
    "emoji 😀🎉👩‍👩‍👧 fire 🔥",
    "costs $19.99, was €24,50, now ¥3,000",
    "  spaces\tand\nnewlines\r\n",
    "literal <|endoftext|> in user text",
    "I'll've they're WE'D ALLCAPS camelCase",
    "{not a placeholder} {{braces}}",
    "3.14159 1,234,567 0xDEADBEEF 2026-11-23",
    "",
]


@pytest.fixture(autouse=True)
def clean_prices(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("BATCHFRAME_PRICES", raising=False)
    clear_prices()
    yield
    clear_prices()


def varied_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    reviews = [" ".join(rng.choice(PIECES, size=int(rng.integers(1, 12)))) for _ in range(n)]
    return pd.DataFrame(
        {
            "product": rng.choice(["Kettle", "Thé vert", "ラーメン", "Chaise 🪑"], size=n),
            "price": [f"${p:,.2f}" for p in rng.uniform(0, 5000, size=n)],
            "review": reviews,
        },
        index=pd.Index([f"row-{i}" for i in range(n)], name="id"),
    )


def cookbook_tokens(jsonl_path: Path) -> tuple[int, int]:
    """(requests, tokens) of the exact upload lines, by the chat cookbook rule, counted here."""
    enc = get_encoding("o200k_base")
    total = 0
    lines = jsonl_path.read_text("utf-8").splitlines()
    for line in lines:
        body = json.loads(line)["body"]
        for message in body["messages"]:
            total += 3 + len(enc.encode_ordinary(message["role"]))
            total += len(enc.encode_ordinary(message["content"]))
        total += 3
    return len(lines), total


def dry_run(df: pd.DataFrame, **kw: object) -> Estimate:
    args: dict[str, object] = {"model": MODEL, "system": SYSTEM, "max_tokens": 16}
    args.update(kw)
    est = df.llm.batch(TEMPLATE, dry_run=True, **args)
    assert isinstance(est, Estimate)
    return est


def test_input_tokens_are_exact_o200k_counts_of_the_rendered_prompts(tmp_path: Path) -> None:
    df = varied_frame(2_000)
    est = dry_run(df)
    path = df.llm.to_jsonl(tmp_path / "requests.jsonl", TEMPLATE, model=MODEL, system=SYSTEM)
    requests, tokens = cookbook_tokens(path)
    assert est.requests == requests
    assert est.input_tokens == tokens
    assert est.input_tokens_exact is True
    assert est.input_tokens_error == 0.0
    assert est.input_tokens_method == "o200k_base, exact"
    assert est.input_tokens_range == (tokens, tokens)


def test_cl100k_models_use_their_own_encoding(tmp_path: Path) -> None:
    df = pd.DataFrame({"product": ["a"], "price": ["$1"], "review": ["Café 日本語 😀"]})
    est = dry_run(df, model="gpt-4-turbo")
    enc = get_encoding("cl100k_base")
    expected = sum(
        3 + len(enc.encode_ordinary(role)) + len(enc.encode_ordinary(text))
        for role, text in [("system", SYSTEM), ("user", "Review of a ($1): Café 日本語 😀")]
    )
    assert est.input_tokens == expected + 3
    assert est.input_tokens_method == "cl100k_base, exact"


def test_every_field_for_gpt_4o_mini() -> None:
    df = varied_frame(300)
    df = pd.concat([df, df.iloc[:50]])  # 50 duplicate rows share their requests
    est = dry_run(df, max_tokens=20)
    price = lookup(MODEL)
    assert price is not None

    assert (est.model, est.provider) == (MODEL, "openai")
    assert est.rows == 350
    assert est.requests == 300  # after dedup
    assert est.requests_to_send == 300 and est.pilot_requests == 0
    assert est.shards == 1
    assert est.output_tokens == 20 * 300
    assert est.output_bound_source == "max_tokens=20"
    assert est.output_tokens_expected is None and est.cost_expected is None
    # gpt-4o-mini: $0.15 / $0.60 per million realtime, half that in batch.
    assert (price.input, price.output, price.batch_discount) == (0.15, 0.60, 0.5)
    batch = (est.input_tokens * 0.075 + est.output_tokens * 0.30) / 1e6
    assert est.cost == pytest.approx(batch)
    assert est.realtime_cost == pytest.approx(2 * batch)
    assert est.realtime_cost == pytest.approx(2 * est.cost)
    assert est.savings == pytest.approx(est.realtime_cost - est.cost)
    assert est.total_cost == est.cost
    assert est.price_date == table_date() == "2026-11-23"
    assert est.price_source == "secondary"
    assert len(est.samples) == 3 and est.samples[0].startswith(f"[system] {SYSTEM}\n[user] ")
    d = est.to_dict()
    json.dumps(d)
    assert d["requests_to_send"] == 300 and d["total_cost"] == est.cost


def test_realtime_is_twice_batch_for_every_discounted_model() -> None:
    df = varied_frame(50)
    for model in ("gpt-4o-mini", "gpt-5.4-mini", "gpt-4.1", "claude-haiku-4-5", "claude-opus-5"):
        est = dry_run(df, model=model)
        assert est.cost is not None and est.cost > 0, model
        assert est.realtime_cost == pytest.approx(2 * est.cost), model
        assert est.savings == pytest.approx(est.cost), model


def test_shards_follow_the_provider_limit() -> None:
    n = 50_001  # OpenAI takes 50,000 requests per batch
    df = pd.DataFrame({"product": "x", "price": "$1", "review": [f"r{i}" for i in range(n)]})
    est = dry_run(df)
    assert est.requests == n and est.shards == 2
    claude = dry_run(df, model="claude-haiku-4-5")  # 100,000 per message batch
    assert claude.shards == 1


def test_without_max_tokens_the_model_maximum_bounds_the_output() -> None:
    df = varied_frame(10)
    est = df.llm.batch(TEMPLATE, model=MODEL, dry_run=True)
    assert est.output_tokens == 16_384 * 10
    assert "model maximum" in est.output_bound_source


def test_reasoning_models_bound_by_max_completion_tokens() -> None:
    df = varied_frame(10)
    est = dry_run(df, model="gpt-5.4-mini", max_tokens=50)  # becomes max_completion_tokens
    assert est.output_tokens == 500
    assert est.output_bound_source == "max_tokens=50"


def test_text_and_html_reprs_read_at_a_glance() -> None:
    df = varied_frame(40)
    df.loc["row-0", "review"] = "<script>alert('x')</script> & <b>bold</b>"
    est = dry_run(df)
    text = repr(est)
    assert text.startswith(f"Estimate for {MODEL} (openai), nothing sent")
    for fragment in (
        "40 → 40 in 1 shard",
        f"{est.input_tokens:,} (o200k_base, exact)",
        "≤ 640 from max_tokens=16",
        "batch cost",
        "saves",
        "prices as of",
        "2026-11-23 (secondary)",
        "sample prompts:",
        "Review of",
    ):
        assert fragment in text, fragment
    assert len(text.splitlines()) <= 16
    page = est._repr_html_()
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert "2026-11-23" in page and f"{est.input_tokens:,}" in page
    assert page.count("<li>") >= 3  # samples (and notes) are listed


def test_dry_run_sends_nothing_and_needs_no_key(
    emulator: Emulator, openai_client: object, batchframe_home: Path
) -> None:
    df = varied_frame(100)
    # No OPENAI_API_KEY (conftest removes it) and no client: still fine.
    est = dry_run(df)
    assert est.cost is not None
    # With a client pointing at a live server, still not one HTTP call.
    dry_run(df, client=openai_client, max_cost=1e-9)
    stats = emulator.stats()
    assert stats["http_calls"] == {}
    assert stats["uploads"] == stats["batches_created"] == stats["realtime_calls"] == 0
    # Nothing written locally either: no job store was created.
    assert not batchframe_home.exists()
    assert batchframe.jobs().empty


def test_claude_dry_run_needs_no_key(emulator: Emulator) -> None:
    df = varied_frame(20)
    est = dry_run(df, model="claude-sonnet-5-5")
    assert est.provider == "anthropic" and est.cost is not None
    assert emulator.stats()["http_calls"] == {}


class NetworkAttempted(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Any socket connect or DNS lookup fails the test; tiktoken's cache is empty."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise NetworkAttempted(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    cache = tmp_path / "empty-tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    get_encoding.cache_clear()  # rebuilt inside the guard
    yield
    get_encoding.cache_clear()
    assert list(cache.iterdir()) == []


def test_dry_run_works_without_any_network(no_network: None) -> None:
    df = varied_frame(200)
    for model in ("gpt-4o-mini", "gpt-4", "gpt-6-sol", "claude-sonnet-5-5"):
        est = dry_run(df, model=model)
        assert est.input_tokens > 0, model


def test_claude_estimate_states_its_error() -> None:
    df = varied_frame(100)
    est = dry_run(df, model="claude-sonnet-5-5")
    assert est.input_tokens_exact is False
    assert est.input_tokens_error == pytest.approx(0.15)
    assert est.input_tokens_method == "o200k_base × 1.30, ±15 %"
    low, high = est.input_tokens_range
    assert low == math.floor(est.input_tokens * 0.85) and high == math.ceil(est.input_tokens * 1.15)
    assert "≈" in repr(est)
    assert any("count_tokens" in note for note in est.notes)


def test_unknown_model_costs_are_unknown_never_zero(emulator: Emulator) -> None:
    df = varied_frame(10)
    est = dry_run(df, model="gpt-9-nova")
    assert est.input_tokens > 0  # tokens are still counted (o200k_base, labelled an estimate)
    for name in ("cost", "realtime_cost", "savings", "total_cost", "cost_expected"):
        assert getattr(est, name) is None, name
    assert est.price_source == "unpriced"
    note = next(n for n in est.notes if "gpt-9-nova" in n and "price" in n)
    assert "set_price" in note and "not zero" in note
    text = repr(est)
    assert "batch cost       unknown (unknown model)" in text
    assert "$0.00" not in text
    assert "unknown" in est._repr_html_()
    assert emulator.stats()["http_calls"] == {}

    batchframe.set_price("gpt-9-nova", input=1.0, output=4.0)
    priced = dry_run(df, model="gpt-9-nova")
    assert priced.cost == pytest.approx((priced.input_tokens * 1.0 + 160 * 4.0) / 2e6)
