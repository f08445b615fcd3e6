"""The Estimate a dry run returns: tokens, an upper bound on cost, and what it rests on.

Output tokens are unknown before the job runs, so ``cost`` is an upper bound (every request
writes its maximum output) and ``cost_expected`` a typical figure once one is known (from the
caller, or measured by a pilot). An unpriced model has every cost field None, shown as
"unknown", never 0.

After a pilot, some requests are already answered (paid at realtime rates) and will not be
sent again: ``pilot_requests`` counts them and ``pilot_cost`` is what they cost, while every
token and batch-cost figure covers the ``requests_to_send`` that the batch still sends.
``total_cost`` adds the two and is what ``max_cost`` is checked against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .html_table import labelled, listing, row, table
from .prices import Price, lookup, table_date
from .tokens import Contents, TokenCount, base_model_name, count_chat_tokens

__all__ = ["Estimate", "build_estimate", "request_costs"]

_SAMPLE_CHARS = 200
_SAMPLES_SHOWN = 3


@dataclass(frozen=True)
class _Band:
    """Requests billed at one rate band: their count and input tokens."""

    price: Price
    requests: int
    input_tokens: int


def _cost(bands: tuple[_Band, ...], output_per_request: float, *, batch: bool) -> float:
    total = 0.0
    for band in bands:
        output = output_per_request * band.requests
        if batch:
            total += band.price.batch_cost(band.input_tokens, output)
        else:
            total += band.price.realtime_cost(band.input_tokens, output)
    return total


@dataclass(frozen=True, repr=False)
class Estimate:
    """What a batch job would cost, computed without sending anything."""

    model: str
    provider: str
    rows: int
    requests: int
    shards: int
    input_tokens: int
    input_tokens_exact: bool
    input_tokens_method: str
    output_tokens: int | None
    output_tokens_expected: int | None
    output_bound_source: str
    cost: float | None
    cost_expected: float | None
    realtime_cost: float | None
    savings: float | None
    price_date: str
    price_source: str
    samples: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    input_tokens_error: float = 0.0
    output_expected_source: str = ""
    pilot_requests: int = 0
    pilot_cost: float | None = None
    pilot_measured: bool = False
    _bands: tuple[_Band, ...] = field(default=(), compare=False)

    # --- derived figures --------------------------------------------------------------------

    @property
    def requests_to_send(self) -> int:
        """Requests the batch will send: all of them minus those a pilot already answered."""
        return self.requests - self.pilot_requests

    @property
    def total_cost(self) -> float | None:
        """Upper bound of everything this job spends: the batch bound plus the pilot's cost."""
        if self.cost is None:
            return None
        if self.pilot_requests == 0:
            return self.cost
        return None if self.pilot_cost is None else self.cost + self.pilot_cost

    @property
    def total_cost_expected(self) -> float | None:
        """The expected batch cost plus the pilot's cost, when both are known."""
        if self.cost_expected is None:
            return None
        if self.pilot_requests == 0:
            return self.cost_expected
        return None if self.pilot_cost is None else self.cost_expected + self.pilot_cost

    @property
    def input_tokens_range(self) -> tuple[int, int]:
        """``(low, high)`` input tokens given the stated relative error (equal when exact)."""
        spread = self.input_tokens * self.input_tokens_error
        return math.floor(self.input_tokens - spread), math.ceil(self.input_tokens + spread)

    # --- budgets -------------------------------------------------------------------------------

    def fits(self, max_cost: float) -> bool:
        """True when the upper-bound total cost is within ``max_cost`` USD (False if unknown)."""
        total = self.total_cost
        return total is not None and total <= max_cost

    def rows_within(self, max_cost: float) -> int:
        """How many rows fit in ``max_cost`` USD at this job's average upper-bound cost per row.

        0 when the cost is unknown. Identical rows share a request, so the average is taken
        per row over the whole job.
        """
        total = self.total_cost
        if total is None or max_cost < 0:
            return 0
        if total <= max_cost or self.rows == 0:
            return self.rows
        per_row = total / self.rows
        return min(self.rows, math.floor(max_cost / per_row))

    def max_tokens_within(self, max_cost: float) -> int | None:
        """The largest max_tokens whose upper bound fits ``max_cost`` (None when unknown).

        0 when even empty answers would not fit (the prompts alone exceed the budget).
        """
        if not self._bands or self.cost is None:
            return None
        pilot = 0.0 if self.pilot_requests == 0 else self.pilot_cost
        if pilot is None:
            return None
        fixed = _cost(self._bands, 0, batch=True) + pilot
        per_token = _cost(self._bands, 1, batch=True) - _cost(self._bands, 0, batch=True)
        if fixed > max_cost:
            return 0
        if per_token <= 0:
            return None
        return math.floor((max_cost - fixed) / per_token + 1e-9)

    def with_output_tokens(self, expected_per_request: float, source: str = "") -> Estimate:
        """This estimate with an expected output per request (e.g. measured in a pilot)."""
        if not expected_per_request >= 0:
            raise ValueError(f"expected_per_request must be >= 0, got {expected_per_request!r}.")
        expected_total = round(expected_per_request * self.requests_to_send)
        cost_expected = None
        if self._bands:
            cost_expected = _cost(self._bands, expected_per_request, batch=True)
        return replace(
            self,
            output_tokens_expected=expected_total,
            cost_expected=cost_expected,
            output_expected_source=source or self.output_expected_source,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain fields only, JSON-ready."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__ if name[0] != "_"}
        out["samples"] = list(self.samples)
        out["notes"] = list(self.notes)
        out["requests_to_send"] = self.requests_to_send
        out["total_cost"] = self.total_cost
        out["total_cost_expected"] = self.total_cost_expected
        return out

    # --- display -------------------------------------------------------------------------------

    def _lines(self) -> list[tuple[str, str]]:
        shard_word = "shard" if self.shards == 1 else "shards"
        lines = [
            (
                "rows → requests",
                f"{self.rows:,} → {self.requests:,} in {self.shards:,} {shard_word}",
            ),
        ]
        if self.pilot_requests:
            if self.pilot_measured:
                paid = "unknown" if self.pilot_cost is None else _money(self.pilot_cost)
                done = f"{self.pilot_requests:,} answered now at realtime rates ({paid})"
            else:
                bound = "unknown" if self.pilot_cost is None else f"≤ {_money(self.pilot_cost)}"
                done = f"{self.pilot_requests:,} to answer now at realtime rates ({bound})"
            lines.append(("pilot", f"{done}; the batch sends {self.requests_to_send:,}"))
        tokens = f"{self.input_tokens:,}"
        if self.input_tokens_error:
            tokens = f"≈ {tokens}"
        lines.append(("input tokens", f"{tokens} ({self.input_tokens_method})"))
        if self.output_tokens is None:
            lines.append(("output tokens", f"unbounded ({self.output_bound_source})"))
        else:
            output = f"≤ {self.output_tokens:,} from {self.output_bound_source}"
            if self.output_tokens_expected is not None:
                output += f", expected {self.output_tokens_expected:,}"
                if self.output_expected_source:
                    output += f" ({self.output_expected_source})"
            lines.append(("output tokens", output))
        if self.cost is None:
            reason = "unknown model" if self.price_source == "unpriced" else "output unbounded"
            lines.append(("batch cost", f"unknown ({reason})"))
        else:
            cost = f"≤ {_money(self.cost)}"
            if self.cost_expected is not None:
                cost += f" (expected {_money(self.cost_expected)})"
            lines.append(("batch cost", cost))
        if self.realtime_cost is not None and self.savings is not None:
            lines.append(
                (
                    "realtime price",
                    f"{_money(self.realtime_cost)}: batch saves {_money(self.savings)}",
                )
            )
        if self.pilot_requests and self.total_cost is not None:
            total = f"≤ {_money(self.total_cost)}"
            if self.total_cost_expected is not None:
                total += f" (expected {_money(self.total_cost_expected)})"
            lines.append(("total with pilot", total))
        lines.append(("prices as of", f"{self.price_date} ({self.price_source})"))
        return lines

    def _shown_samples(self) -> list[str]:
        return [_truncate(sample) for sample in self.samples[:_SAMPLES_SHOWN]]

    def _head(self) -> str:
        if self.pilot_requests and self.pilot_measured:
            sent = f"only the {self.pilot_requests:,}-request pilot sent"
        else:
            sent = "nothing sent"
        return f"Estimate for {self.model} ({self.provider}), {sent}"

    def __repr__(self) -> str:
        head = self._head()
        width = max(len(label) for label, _ in self._lines())
        body = [f"  {label:<{width}}  {value}" for label, value in self._lines()]
        body += [f"  note: {note}" for note in self.notes]
        samples = self._shown_samples()
        if samples:
            body.append("  sample prompts:")
            body += [f"    {i}. {sample!r}" for i, sample in enumerate(samples, 1)]
        return "\n".join([head, *body])

    __str__ = __repr__

    def _repr_html_(self) -> str:
        rows = [row(label, value) for label, value in self._lines()]
        if self.notes:
            rows.append(labelled("notes", listing(self.notes)))
        samples = self._shown_samples()
        if samples:
            rows.append(labelled("sample prompts", listing(samples, ordered=True, code=True)))
        return table(self._head(), rows)


def _money(usd: float) -> str:
    if usd >= 1 or usd == 0:
        return f"${usd:,.2f}"
    if usd >= 0.01:
        return f"${usd:.4f}"
    return f"${usd:.6f}"


def _truncate(text: str) -> str:
    if len(text) <= _SAMPLE_CHARS:
        return text
    return text[: _SAMPLE_CHARS - 1] + "…"


def _band_masks(price: Price, per_request: np.ndarray) -> list[tuple[Price, np.ndarray]]:
    """``(rates, mask)`` for each price band that some request's prompt size falls in."""
    if not price.tiers:
        return [(price, np.ones(len(per_request), dtype=bool))]
    thresholds = sorted({tier.above_prompt_tokens for tier in price.tiers})
    # Band 0 is the base rate; band k is the tier above thresholds[k-1] (strictly above).
    which = np.searchsorted(np.asarray(thresholds), per_request, side="left")
    return [
        (price if k == 0 else price.band(thresholds[k - 1] + 1), which == k)
        for k in np.unique(which)
    ]


def _bands_for(price: Price, per_request: np.ndarray) -> tuple[_Band, ...]:
    """Split requests by the rate band their prompt size falls in (most models have one)."""
    if not len(per_request):
        return (_Band(price, 0, 0),)
    return tuple(
        _Band(rates, int(mask.sum()), int(per_request[mask].sum()))
        for rates, mask in _band_masks(price, per_request)
    )


def _tokenizer_note(model: str, count: TokenCount) -> str | None:
    if count.exact:
        return None
    if base_model_name(model).startswith("claude"):
        return (
            f"Claude's tokenizer is not public: input tokens approximated as "
            f"{count.method} (Anthropic's count_tokens gives the real figure)."
        )
    return f"{model} has no published tokenizer; counted with {count.encoding}."


def build_estimate(
    *,
    model: str,
    provider: str,
    rows: int,
    requests: int,
    shards: int,
    messages: Sequence[tuple[str, Contents]] | None = None,
    max_output_tokens: int | None,
    samples: Sequence[str],
    token_count: TokenCount | None = None,
    expected_output_tokens: float | None = None,
    expected_source: str = "",
    pilot_requests: int = 0,
    pilot_cost: float | None = None,
    pilot_measured: bool = False,
    extra_notes: Sequence[str] = (),
) -> Estimate:
    """Count the input tokens of the requests to send and price the job.

    ``messages`` holds one content per request to send (or pass ``token_count``, already
    counted, instead). ``max_output_tokens`` is the request's max_tokens; without it the
    model's maximum from the price table bounds the output, and without that the output (and
    so the cost) is unbounded. ``expected_output_tokens`` is a typical output per request,
    when known. ``pilot_requests`` were (or will be) answered by a pilot at realtime rates,
    costing ``pilot_cost``; they are part of ``requests`` but not of the requests counted.
    """
    if isinstance(pilot_requests, bool) or not 0 <= pilot_requests <= requests:
        raise ValueError(f"pilot_requests must be between 0 and {requests}, got {pilot_requests}.")
    to_send = requests - pilot_requests
    if token_count is None:
        if messages is None:
            raise ValueError("build_estimate needs messages= or token_count=.")
        token_count = count_chat_tokens(model, messages, n=to_send)
    count = token_count
    if count.requests != to_send:
        raise ValueError(
            f"The token count covers {count.requests} requests but {to_send} are to be sent."
        )
    notes: list[str] = []
    tokenizer_note = _tokenizer_note(model, count)
    if tokenizer_note:
        notes.append(tokenizer_note)
    notes.extend(extra_notes)

    price = lookup(model)
    per_output: int | None
    if max_output_tokens is not None:
        per_output, bound = max_output_tokens, f"max_tokens={max_output_tokens:,}"
    elif price is not None and price.max_output_tokens is not None:
        per_output = price.max_output_tokens
        bound = f"model maximum {per_output:,} (no max_tokens set)"
    else:
        per_output, bound = None, "no max_tokens set and the model maximum is unknown"
        notes.append("Set max_tokens to bound the output tokens and the cost.")

    bands: tuple[_Band, ...] = ()
    cost = realtime = savings = cost_expected = None
    if price is None:
        notes.append(
            f"Unknown model {model!r}: no price in batchframe's table, so costs are unknown "
            "(not zero). Add its rates with batchframe.set_price(model, input=..., output=...) "
            "in USD per million tokens, or a BATCHFRAME_PRICES file."
        )
        pilot_cost = None
    else:
        bands = _bands_for(price, count.per_request)
        if per_output is not None:
            cost = _cost(bands, per_output, batch=True)
            realtime = _cost(bands, per_output, batch=False)
            savings = realtime - cost
        if expected_output_tokens is not None:
            cost_expected = _cost(bands, expected_output_tokens, batch=True)
        if price.model != base_model_name(model):
            notes.append(f"Priced as {price.model}, the closest name in the price table.")
        if any(band.price is not price for band in bands):
            notes.append("Some prompts are long enough for the model's higher price band.")
        if price.source not in ("verified", "override"):
            notes.append(f"{price.model} prices are {price.source}, not from the provider's page.")
    expected_total = (
        None if expected_output_tokens is None else round(expected_output_tokens * to_send)
    )
    return Estimate(
        model=model,
        provider=provider,
        rows=rows,
        requests=requests,
        shards=shards,
        input_tokens=count.total,
        input_tokens_exact=count.exact,
        input_tokens_method=count.method,
        output_tokens=None if per_output is None else per_output * to_send,
        output_tokens_expected=expected_total,
        output_bound_source=bound,
        cost=cost,
        cost_expected=cost_expected,
        realtime_cost=realtime,
        savings=savings,
        price_date=table_date() if price is None else price.as_of,
        price_source="unpriced" if price is None else price.source,
        samples=tuple(samples),
        notes=tuple(notes),
        input_tokens_error=count.relative_error,
        output_expected_source=expected_source if expected_output_tokens is not None else "",
        pilot_requests=pilot_requests,
        pilot_cost=pilot_cost,
        pilot_measured=pilot_measured,
        _bands=bands,
    )


def request_costs(
    model: str, per_request_input: np.ndarray, output_per_request: float, *, batch: bool
) -> np.ndarray | None:
    """USD per request at the model's rates (band by band); None when the model is unpriced."""
    price = lookup(model)
    if price is None:
        return None
    tokens = np.asarray(per_request_input, dtype=np.int64)
    out = np.zeros(len(tokens), dtype=float)
    for rates, mask in _band_masks(price, tokens):
        cost = rates.input * tokens[mask] + rates.output * output_per_request
        out[mask] = cost * 1e-6 * (rates.batch_discount if batch else 1.0)
    return out
