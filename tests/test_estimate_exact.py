"""Claude input tokens: the offline approximation and exact=True through count_tokens."""

from __future__ import annotations

import threading
import time

import httpx2
import pandas as pd
import pytest

from batchframe.emulator import Emulator
from batchframe.errors import AuthenticationError
from batchframe.estimate import Estimate
from batchframe.estimate.requests import COUNT_CONCURRENCY
from batchframe.estimate.tokens import CLAUDE_RELATIVE_ERROR

TEMPLATE = "Classify this review: {review}"
SYSTEM = "Answer with one word."


def reviews(n: int) -> pd.DataFrame:
    texts = [f"review {i}: " + "très bon produit 🙂, " * (i % 9) + "fin" for i in range(n)]
    return pd.DataFrame({"review": texts})


class ConcurrencyMeter(httpx2.BaseTransport):
    """Real HTTP, counting how many requests are in flight at once."""

    def __init__(self, delay: float = 0.01) -> None:
        self.inner = httpx2.HTTPTransport()
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.delay = delay

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            time.sleep(self.delay)  # hold the slot so overlapping calls show
            return self.inner.handle_request(request)
        finally:
            with self.lock:
                self.now -= 1


def count_tokens_directly(client: object, model: str, text: str) -> int:
    result = client.messages.count_tokens(  # type: ignore[attr-defined]
        model=model, system=SYSTEM, messages=[{"role": "user", "content": text}]
    )
    return int(result.input_tokens)


def test_exact_uses_count_tokens_once_per_distinct_request(emulator: Emulator) -> None:
    meter = ConcurrencyMeter()
    client = emulator.anthropic_client(max_retries=0, http_client=httpx2.Client(transport=meter))
    df = reviews(30)
    df = pd.concat([df, df.iloc[:10], df.iloc[:5]], ignore_index=True)  # 45 rows, 30 requests
    model = "claude-haiku-4-5"
    est = df.llm.batch(
        TEMPLATE, model=model, system=SYSTEM, max_tokens=8, dry_run=True, exact=True, client=client
    )
    assert isinstance(est, Estimate)
    stats = emulator.stats()
    assert stats["token_count_calls"] == 30
    assert stats["http_calls"] == {"POST /v1/messages/count_tokens": 30}
    assert stats["batches_created"] == stats["realtime_calls"] == 0
    assert 1 <= meter.peak <= COUNT_CONCURRENCY

    plain = emulator.anthropic_client(max_retries=0)
    expected = sum(
        count_tokens_directly(plain, model, TEMPLATE.format(review=r)) for r in reviews(30).review
    )
    assert est.input_tokens == expected
    assert est.input_tokens_exact is True and est.input_tokens_error == 0.0
    assert est.input_tokens_method == "Anthropic count_tokens, exact"
    assert any("not billed" in note for note in est.notes)
    assert est.rows == 45 and est.requests == 30


def test_the_approximation_is_within_its_stated_error_for_o200k_like_claude(
    emulator: Emulator,
) -> None:
    """Claude before the 2026 tokenizer is approximated as o200k_base (factor 1.0).

    The emulator's count_tokens is o200k_base + framing, so the approximation must land
    within the stated ±15 % of the exact figure.
    """
    client = emulator.anthropic_client(max_retries=0)
    df = reviews(40)
    args = {"model": "claude-haiku-4-5", "system": SYSTEM, "max_tokens": 8, "dry_run": True}
    approx = df.llm.batch(TEMPLATE, **args)
    exact = df.llm.batch(TEMPLATE, exact=True, client=client, **args)
    assert approx.input_tokens_error == CLAUDE_RELATIVE_ERROR
    low, high = approx.input_tokens_range
    assert exact.input_tokens >= low * 0.999 and exact.input_tokens <= high * 1.001
    assert abs(approx.input_tokens / exact.input_tokens - 1) <= CLAUDE_RELATIVE_ERROR
    # The exact figure prices the job: realtime is still twice batch.
    assert exact.cost is not None and exact.realtime_cost == pytest.approx(2 * exact.cost)


def test_new_claude_models_are_counted_with_the_larger_factor() -> None:
    df = reviews(20)
    old = df.llm.batch(TEMPLATE, model="claude-haiku-4-5", system=SYSTEM, dry_run=True)
    new = df.llm.batch(TEMPLATE, model="claude-sonnet-5-5", system=SYSTEM, dry_run=True)
    assert new.input_tokens_method.startswith("o200k_base × 1.30")
    assert old.input_tokens_method.startswith("o200k_base × 1.00")
    assert new.input_tokens > old.input_tokens * 1.2


def test_exact_is_a_no_op_for_models_with_a_public_tokenizer(emulator: Emulator) -> None:
    df = reviews(10)
    client = emulator.openai_client(max_retries=0)
    plain = df.llm.batch(TEMPLATE, model="gpt-4o-mini", max_tokens=8, dry_run=True)
    exact = df.llm.batch(
        TEMPLATE, model="gpt-4o-mini", max_tokens=8, dry_run=True, exact=True, client=client
    )
    assert exact.input_tokens == plain.input_tokens
    assert emulator.stats()["http_calls"] == {}
    assert any("no calls made" in note for note in exact.notes)


def test_exact_for_an_unpublished_openai_tokenizer_asks_the_responses_endpoint(
    emulator: Emulator,
) -> None:
    df = reviews(12)
    client = emulator.openai_client(max_retries=0)
    approx = df.llm.batch(TEMPLATE, model="gpt-6-sol", max_tokens=8, dry_run=True)
    exact = df.llm.batch(
        TEMPLATE, model="gpt-6-sol", max_tokens=8, dry_run=True, exact=True, client=client
    )
    assert approx.input_tokens_exact is False and exact.input_tokens_exact is True
    assert emulator.stats()["http_calls"] == {"POST /v1/responses/input_tokens": 12}
    assert exact.input_tokens_method == "OpenAI responses/input_tokens, exact"


def test_exact_without_a_key_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    df = reviews(3)
    with pytest.raises(Exception, match="ANTHROPIC_API_KEY"):
        df.llm.batch(TEMPLATE, model="claude-haiku-4-5", dry_run=True, exact=True)


def test_exact_with_a_rejected_key_is_an_authentication_error(emulator: Emulator) -> None:
    import anthropic

    class Reject(httpx2.BaseTransport):
        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(
                401,
                json={"type": "error", "error": {"type": "authentication_error", "message": "no"}},
            )

    client = anthropic.Anthropic(
        api_key="bad",
        base_url=emulator.anthropic_base_url,
        max_retries=0,
        http_client=httpx2.Client(transport=Reject()),
    )
    with pytest.raises(AuthenticationError, match="ANTHROPIC_API_KEY"):
        reviews(3).llm.batch(
            TEMPLATE, model="claude-haiku-4-5", dry_run=True, exact=True, client=client
        )
