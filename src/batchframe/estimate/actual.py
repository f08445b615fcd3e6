"""What a job actually cost: per-request USD from reported usage, and the job's cost summary.

Prices come from the same dated table as the estimate. A request is billed only when it was
answered (fate ``ok``). Requests answered through the batch API pay the batch rate; requests a
pilot answered through the realtime endpoint (results with ``shard`` below 0) pay the full
realtime rate. Cached prompt tokens pay the cache-read rate and Anthropic cache writes the
5-minute write rate (the input rate when none is published). A request whose prompt is long
enough for a model's higher band pays that band's rates for the whole request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .html_table import CELL, header, listing, row, table
from .prices import Price, lookup

__all__ = [
    "PILOT_SHARD",
    "CostSummary",
    "load_estimate",
    "result_costs",
    "summarize",
    "total_costs",
]

# Results a pilot produced carry this shard number in the job's result files.
PILOT_SHARD = -1
_PER_TOKEN = 1e-6


def load_estimate(folder: Path) -> dict[str, Any] | None:
    """The estimate stored with a job (``estimate.json``), or None for older jobs."""
    try:
        data = json.loads((folder / "estimate.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _column(table: pd.DataFrame, name: str) -> np.ndarray:
    if name not in table:
        return np.zeros(len(table), dtype=float)
    return pd.to_numeric(table[name], errors="coerce").astype("Float64").fillna(0).to_numpy(float)


def _realtime(
    price: Price, inp: np.ndarray, out: np.ndarray, cached: np.ndarray, written: np.ndarray
) -> np.ndarray:
    write_rate = price.cache_write_5m if price.cache_write_5m is not None else price.input
    plain = np.maximum(inp - cached - written, 0)
    return (
        plain * price.input + cached * price.cached_rate + written * write_rate + out * price.output
    ) * _PER_TOKEN


def result_costs(model: str, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """``(billed, realtime)`` USD per row of a results table, or None when unpriced.

    ``table`` has the result columns (``fate``, ``input_tokens``, ``output_tokens``,
    ``cached_tokens``, ``cache_write_tokens``) and optionally ``shard``. ``billed`` is what
    was paid (batch rate, or realtime for pilot rows); ``realtime`` what the same answers would
    have cost through the realtime endpoint. Rows that were not answered cost 0.
    """
    price = lookup(model)
    if price is None:
        return None
    n = len(table)
    answered = (table["fate"] == "ok").fillna(False).to_numpy(bool) if n else np.zeros(0, bool)
    inp = _column(table, "input_tokens")
    out = _column(table, "output_tokens")
    cached = _column(table, "cached_tokens")
    written = _column(table, "cache_write_tokens")
    realtime = np.zeros(n, dtype=float)
    discount = np.ones(n, dtype=float)
    from .estimate import _band_masks

    for rates, mask in _band_masks(price, inp.astype(np.int64)):
        realtime[mask] = _realtime(rates, inp[mask], out[mask], cached[mask], written[mask])
        discount[mask] = rates.batch_discount
    realtime[~answered] = 0.0
    pilot = _column(table, "shard") < 0 if "shard" in table else np.zeros(n, dtype=bool)
    billed = np.where(pilot, realtime, realtime * discount)
    return billed, realtime


def total_costs(model: str, table: pd.DataFrame | None) -> tuple[float | None, float | None]:
    """``(billed, realtime)`` USD for a whole results table; (None, None) when unpriced."""
    if table is None or not len(table):
        return (None, None) if lookup(model) is None else (0.0, 0.0)
    costs = result_costs(model, table)
    if costs is None:
        return None, None
    billed, realtime = costs
    return float(billed.sum()), float(realtime.sum())


# --- the summary ------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class CostSummary(Mapping[str, Any]):
    """Tokens and USD a job used, against what it would have cost in realtime and its estimate.

    Reads like a dict (``summary["cost"]``) for scripts, and shows as a small table in a
    notebook. ``cost`` is what was billed: answered batch requests at the batch rate plus any
    pilot answers at the realtime rate. ``realtime_cost`` is what the same answers would cost
    through the realtime endpoint, ``savings`` the difference. ``estimated_*`` come from the
    estimate made when the job was planned (None for jobs planned before it was stored).
    """

    job_id: str
    state: str
    model: str
    rows: int
    requests: int
    succeeded: int
    errored: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost: float | None
    realtime_cost: float | None
    savings: float | None
    pilot_requests: int = 0
    pilot_cost: float | None = None
    estimated_cost: float | None = None
    estimated_cost_expected: float | None = None
    estimated_input_tokens: int | None = None
    estimated_input_error: float | None = None
    estimated_output_tokens: int | None = None
    estimated_output_expected: int | None = None
    price_date: str | None = None
    notes: tuple[str, ...] = field(default=())

    # Mapping protocol: the summary used to be a plain dict.
    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self._keys()}
        out["notes"] = list(self.notes)
        return out

    # --- comparisons ---------------------------------------------------------------------------

    @property
    def input_tokens_vs_estimate(self) -> float | None:
        """Actual ÷ estimated input tokens over the requests the estimate counted."""
        if not self.estimated_input_tokens:
            return None
        return self.input_tokens / self.estimated_input_tokens

    @property
    def cost_vs_estimate(self) -> float | None:
        """Actual cost ÷ the estimate's upper bound (≤ 1 when the bound held)."""
        if self.cost is None or not self.estimated_cost:
            return None
        return self.cost / self.estimated_cost

    # --- display -------------------------------------------------------------------------------

    def _rows(self) -> list[tuple[str, str, str]]:
        """(what, actual, estimated) lines."""
        lines: list[tuple[str, str, str]] = [
            (
                "requests",
                f"{self.succeeded:,} answered, {self.errored:,} errors of {self.requests:,}",
                "",
            )
        ]
        if self.pilot_requests:
            lines.append(
                (
                    "pilot",
                    f"{self.pilot_requests:,} answered in realtime ({_usd(self.pilot_cost)})",
                    "",
                )
            )
        est_in = ""
        if self.estimated_input_tokens is not None:
            est_in = f"{self.estimated_input_tokens:,}"
            if self.estimated_input_error:
                est_in = f"≈ {est_in} (±{self.estimated_input_error:.0%})"
        lines.append(("input tokens", f"{self.input_tokens:,}", est_in))
        if self.cached_tokens or self.cache_write_tokens:
            lines.append(
                (
                    "  of which cached",
                    f"{self.cached_tokens:,} read, {self.cache_write_tokens:,} written",
                    "",
                )
            )
        est_out = ""
        if self.estimated_output_tokens is not None:
            est_out = f"≤ {self.estimated_output_tokens:,}"
            if self.estimated_output_expected is not None:
                est_out += f", expected {self.estimated_output_expected:,}"
        lines.append(("output tokens", f"{self.output_tokens:,}", est_out))
        if self.reasoning_tokens:
            lines.append(("  of which reasoning", f"{self.reasoning_tokens:,}", ""))
        est_cost = ""
        if self.estimated_cost is not None:
            est_cost = f"≤ {_usd(self.estimated_cost)}"
            if self.estimated_cost_expected is not None:
                est_cost += f", expected {_usd(self.estimated_cost_expected)}"
        lines.append(("cost", _usd(self.cost), est_cost))
        lines.append(("realtime would cost", _usd(self.realtime_cost), ""))
        lines.append(("savings", _usd(self.savings), ""))
        return lines

    def __repr__(self) -> str:
        head = f"Cost of job {self.job_id} ({self.model}, {self.state})"
        rows = self._rows()
        width = max(len(r[0]) for r in rows)
        value_width = max(len(r[1]) for r in rows)
        body = []
        for what, actual, estimated in rows:
            line = f"  {what:<{width}}  {actual:<{value_width}}"
            if estimated:
                line += f"  estimate {estimated}"
            body.append(line.rstrip())
        if self.price_date:
            body.append(f"  prices as of {self.price_date}")
        body += [f"  note: {note}" for note in self.notes]
        return "\n".join([head, *body])

    __str__ = __repr__

    def _repr_html_(self) -> str:
        out = [header("", "actual", "estimate")]
        out += [row(*cells) for cells in self._rows()]
        notes = list(self.notes)
        if self.price_date:
            notes.append(f"prices as of {self.price_date}")
        if notes:
            out.append(f'<tr><td colspan="3" style="{CELL}">{listing(notes)}</td></tr>')
        return table(f"Cost of job {self.job_id} ({self.model}, {self.state})", out)


def _usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    if value >= 1 or value == 0:
        return f"${value:,.2f}"
    if value >= 0.01:
        return f"${value:.4f}"
    return f"${value:.6f}"


def _int_sum(table: pd.DataFrame, name: str, mask: np.ndarray) -> int:
    if name not in table or not len(table):
        return 0
    return int(_column(table, name)[mask].sum())


def summarize(
    *,
    job_id: str,
    state: str,
    model: str,
    rows: int,
    requests: int,
    succeeded: int,
    errored: int,
    results: pd.DataFrame,
    estimate: Mapping[str, Any] | None = None,
    estimated_cost: float | None = None,
) -> CostSummary:
    """The cost summary of a job from its settled results (one row per request) and estimate.

    ``estimate`` is the stored :meth:`Estimate.to_dict` of the job (None for older jobs, when
    only ``estimated_cost`` is known).
    """
    n = len(results)
    answered = (
        (results["fate"] == "ok").fillna(False).to_numpy(bool) if n else np.zeros(0, dtype=bool)
    )
    costs = result_costs(model, results) if n else None
    price = lookup(model)
    if price is None:
        cost = realtime = None
    elif costs is None:
        cost = realtime = 0.0
    else:
        cost, realtime = float(costs[0].sum()), float(costs[1].sum())
    pilot = (
        (_column(results, "shard") < 0) & answered
        if n and "shard" in results
        else np.zeros(n, dtype=bool)
    )
    pilot_cost = None
    if costs is not None:
        pilot_cost = float(costs[0][pilot].sum())
    elif price is not None:
        pilot_cost = 0.0
    notes: list[str] = []
    est = dict(estimate or {})
    est_input = est.get("input_tokens")
    est_output = est.get("output_tokens")
    est_expected = est.get("output_tokens_expected")
    est_cost = est.get("total_cost", estimated_cost)
    est_cost_expected = est.get("total_cost_expected")
    if est and est.get("pilot_requests") and est.get("pilot_measured"):
        # The stored estimate counted only the requests sent in the batch: add the pilot's
        # measured tokens so both sides cover the same requests.
        est_input = (
            None if est_input is None else est_input + _int_sum(results, "input_tokens", pilot)
        )
        if est_output is not None:
            est_output += _int_sum(results, "output_tokens", pilot)
        if est_expected is not None:
            est_expected += _int_sum(results, "output_tokens", pilot)
    if price is None:
        notes.append(f"{model} has no price in the table: costs are unknown, not zero.")
    failed = requests - int(answered.sum())
    if failed > 0 and est_input is not None:
        notes.append(
            f"{failed:,} request(s) have no answer and are not billed; the estimate counted them."
        )
    return CostSummary(
        job_id=job_id,
        state=state,
        model=model,
        rows=rows,
        requests=requests,
        succeeded=succeeded,
        errored=errored,
        input_tokens=_int_sum(results, "input_tokens", answered),
        output_tokens=_int_sum(results, "output_tokens", answered),
        cached_tokens=_int_sum(results, "cached_tokens", answered),
        cache_write_tokens=_int_sum(results, "cache_write_tokens", answered),
        reasoning_tokens=_int_sum(results, "reasoning_tokens", answered),
        cost=cost,
        realtime_cost=realtime,
        savings=None if cost is None or realtime is None else realtime - cost,
        pilot_requests=int(pilot.sum()),
        pilot_cost=pilot_cost if pilot.any() else None,
        estimated_cost=est_cost,
        estimated_cost_expected=est_cost_expected,
        estimated_input_tokens=est_input,
        estimated_input_error=est.get("input_tokens_error"),
        estimated_output_tokens=est_output,
        estimated_output_expected=est_expected,
        price_date=None if price is None else price.as_of,
        notes=tuple(notes),
    )
