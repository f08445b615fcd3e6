"""The dated price table: what a model costs per million tokens, realtime and in batch.

The shipped table is package data (``batchframe/data/prices.json``). Users override it two
ways, both read at call time: :func:`set_price` for this process, and the ``BATCHFRAME_PRICES``
environment variable naming a JSON file in the same format. Overrides win over the shipped
table; fields an override leaves out are inherited from the shipped entry of the same name.

A model that is not in the table is *unpriced*: :func:`lookup` returns None and callers must
say "unknown", never treat it as free.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from batchframe.errors import ConfigurationError, InputError

__all__ = [
    "ENV_VAR",
    "RATE_FIELDS",
    "Price",
    "PriceTier",
    "clear_prices",
    "known_models",
    "lookup",
    "set_price",
    "table_date",
]

ENV_VAR = "BATCHFRAME_PRICES"
# USD per million tokens. cached_input is OpenAI's; cache_read / cache_write_* are Anthropic's.
RATE_FIELDS = ("input", "cached_input", "cache_read", "cache_write_5m", "cache_write_1h", "output")
_PER_TOKEN = 1e-6


@dataclass(frozen=True)
class PriceTier:
    """A higher band, billed for a whole request whose prompt exceeds ``above_prompt_tokens``."""

    above_prompt_tokens: int
    input: float
    output: float
    cached_input: float | None = None
    cache_read: float | None = None
    cache_write_5m: float | None = None
    cache_write_1h: float | None = None
    source: str = "derived"
    note: str = ""


@dataclass(frozen=True)
class Price:
    """One model's standard (realtime) rates in USD per million tokens.

    Batch is ``batch_discount`` (0.5) times every category. A cache rate of None means the
    provider publishes none; cached tokens are then charged at the input rate (an upper bound).
    """

    model: str
    input: float
    output: float
    provider: str | None = None
    cached_input: float | None = None
    cache_read: float | None = None
    cache_write_5m: float | None = None
    cache_write_1h: float | None = None
    max_output_tokens: int | None = None
    source: str = "override"
    note: str = ""
    as_of: str = ""
    batch_discount: float = 0.5
    tiers: tuple[PriceTier, ...] = ()

    @property
    def cached_rate(self) -> float:
        """Rate for prompt tokens read from the provider's cache."""
        for rate in (self.cached_input, self.cache_read):
            if rate is not None:
                return rate
        return self.input

    def realtime_cost(
        self, input_tokens: float, output_tokens: float, cached_tokens: float = 0
    ) -> float:
        """USD at realtime rates. ``input_tokens`` includes the ``cached_tokens`` among them.

        Tiers are not applied here (they depend on each request's size): price a request with
        ``price.band(prompt_tokens).realtime_cost(...)``.
        """
        if min(input_tokens, output_tokens, cached_tokens) < 0 or cached_tokens > input_tokens:
            raise InputError(
                "Token counts must be >= 0, with cached_tokens no more than input_tokens; got "
                f"input={input_tokens}, output={output_tokens}, cached={cached_tokens}."
            )
        uncached = input_tokens - cached_tokens
        return (
            uncached * self.input + cached_tokens * self.cached_rate + output_tokens * self.output
        ) * _PER_TOKEN

    def batch_cost(
        self, input_tokens: float, output_tokens: float, cached_tokens: float = 0
    ) -> float:
        """USD through the batch API: every category at ``batch_discount`` of realtime."""
        return self.realtime_cost(input_tokens, output_tokens, cached_tokens) * self.batch_discount

    def band(self, prompt_tokens: int) -> Price:
        """The rates that apply to a request with ``prompt_tokens`` input tokens."""
        chosen: PriceTier | None = None
        for tier in self.tiers:
            if prompt_tokens > tier.above_prompt_tokens and (
                chosen is None or tier.above_prompt_tokens > chosen.above_prompt_tokens
            ):
                chosen = tier
        if chosen is None:
            return self
        rates = {name: getattr(chosen, name) for name in RATE_FIELDS}
        return replace(self, **rates, source=chosen.source, tiers=())


# --- the table ---------------------------------------------------------------------------------

_lock = threading.Lock()
_set_prices: dict[str, dict[str, Any]] = {}
_env_cache: dict[tuple[str, int, int], tuple[str, float | None, dict[str, dict[str, Any]]]] = {}
_shipped_cache: list[tuple[str, float, dict[str, dict[str, Any]]]] = []

# Snapshot dates providers append: -2024-07-18, -20250929, -0613.
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$")


def _number(value: Any, what: str, origin: str, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigurationError(
            f"{origin}: {what} must be a number of USD per million tokens >= 0, got {value!r}."
        )
    return float(value)


def _check_entry(name: str, entry: Any, origin: str, *, partial: bool) -> dict[str, Any]:
    """Validate one table entry; ``partial`` entries (overrides) may omit input/output."""
    where = f"{origin}, model {name!r}"
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"{where}: expected an object of rates, got {entry!r}.")
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if key in RATE_FIELDS:
            required = key in ("input", "output") and not partial
            out[key] = _number(value, key, where, optional=not required)
        elif key == "max_output_tokens":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigurationError(f"{where}: max_output_tokens must be an integer or null.")
            out[key] = value
        elif key == "tiers":
            out[key] = tuple(_check_tier(tier, where) for tier in value or ())
        elif key in ("provider", "source", "note", "as_of"):
            out[key] = None if value is None else str(value)
        # Unknown keys are ignored so newer tables still load in older versions.
    if not partial:
        for key in ("input", "output"):
            if key not in out:
                raise ConfigurationError(f"{where}: the {key!r} rate is missing.")
    return out


def _check_tier(tier: Any, where: str) -> PriceTier:
    if not isinstance(tier, Mapping) or not isinstance(tier.get("above_prompt_tokens"), int):
        raise ConfigurationError(f"{where}: each tier needs an integer above_prompt_tokens.")
    rates = {
        key: _number(tier.get(key), key, where, optional=key not in ("input", "output"))
        for key in RATE_FIELDS
    }
    return PriceTier(
        above_prompt_tokens=tier["above_prompt_tokens"],
        source=str(tier.get("source", "derived")),
        note=str(tier.get("note", "")),
        **rates,  # type: ignore[arg-type]
    )


def _parse_table(
    doc: Any, origin: str, *, partial: bool
) -> tuple[str | None, float | None, dict[str, dict[str, Any]]]:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("models"), Mapping):
        raise ConfigurationError(
            f'{origin}: expected a JSON object with a "models" object mapping model names to '
            'rates, e.g. {"models": {"my-model": {"input": 1.0, "output": 4.0}}}.'
        )
    discount = doc.get("batch_discount")
    if discount is not None:
        discount = _number(discount, "batch_discount", origin, optional=False)
    as_of = doc.get("as_of")
    models = {
        str(name).lower(): _check_entry(str(name), entry, origin, partial=partial)
        for name, entry in doc["models"].items()
    }
    return (None if as_of is None else str(as_of)), discount, models


def _shipped() -> tuple[str, float, dict[str, dict[str, Any]]]:
    if not _shipped_cache:
        text = resources.files("batchframe").joinpath("data", "prices.json").read_text("utf-8")
        as_of, discount, models = _parse_table(
            json.loads(text), "batchframe's price table", partial=False
        )
        _shipped_cache.append((as_of or "", 0.5 if discount is None else discount, models))
    return _shipped_cache[0]


def _env_table() -> tuple[str, float | None, dict[str, dict[str, Any]]] | None:
    """The BATCHFRAME_PRICES file, re-read whenever the variable or the file changes."""
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return None
    path = Path(raw).expanduser()
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in _env_cache:
            doc = json.loads(path.read_text("utf-8"))
            as_of, discount, models = _parse_table(doc, f"{ENV_VAR} file {path}", partial=True)
            date = as_of or dt.date.fromtimestamp(stat.st_mtime).isoformat()
            _env_cache.clear()
            _env_cache[key] = (date, discount, models)
    except OSError as exc:
        raise ConfigurationError(
            f"{ENV_VAR} points to {path}, which cannot be read ({exc.strerror or exc}); fix the "
            f"path or unset {ENV_VAR}."
        ) from exc
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{ENV_VAR} file {path} is not valid JSON (line {exc.lineno}: {exc.msg})."
        ) from exc
    return _env_cache[key]


def _merged(
    overrides: Mapping[str, Price | Mapping[str, Any]] | None,
) -> tuple[dict[str, dict[str, Any]], str, float]:
    """Every known entry, overrides applied: call argument > set_price > env file > shipped."""
    as_of, discount, shipped = _shipped()
    table = {name: {**entry, "as_of": as_of} for name, entry in shipped.items()}

    def apply(name: str, entry: Mapping[str, Any]) -> None:
        # An override inherits what it leaves out, except tiers: bands derived from the old
        # rates would be stale once input/output change.
        base = {k: v for k, v in table.get(name, {}).items() if k != "tiers"}
        table[name] = {**base, "source": "override", "note": "", **entry}

    env = _env_table()
    if env is not None:
        env_date, env_discount, env_models = env
        discount = env_discount if env_discount is not None else discount
        for name, entry in env_models.items():
            apply(name, {"as_of": env_date, "note": f"from {ENV_VAR}", **entry})
    with _lock:
        set_now = dict(_set_prices)
    for name, entry in set_now.items():
        apply(name, entry)
    for name, value in (overrides or {}).items():
        if isinstance(value, Price):
            entry = {f.name: getattr(value, f.name) for f in fields(Price) if f.name != "model"}
        else:
            entry = _check_entry(name, value, "lookup overrides", partial=True)
            entry.setdefault("as_of", dt.date.today().isoformat())
        apply(name.lower(), entry)
    return table, as_of, discount


def _to_price(name: str, entry: dict[str, Any], discount: float) -> Price:
    for key in ("input", "output"):
        if entry.get(key) is None:
            raise ConfigurationError(
                f"The price override for {name!r} has no {key!r} rate and batchframe's table has "
                f"no entry to inherit it from; give both input= and output=."
            )
    known = {f.name for f in fields(Price)}
    values = {k: v for k, v in entry.items() if k in known}
    values.setdefault("batch_discount", discount)
    return Price(model=name, **values)


def _candidates(model: str, names: list[str]) -> list[str]:
    """Table names ``model`` may resolve to, best first: exact, undated, longest prefix."""
    name = model.strip().lower()
    undated = _DATE_SUFFIX.sub("", name)
    found = [n for n in (name, undated) if n in names]
    for candidate in sorted(names, key=len, reverse=True):
        rest = undated[len(candidate) :]
        # Only at a "-" boundary and never across a version number: gpt-5-codex may be
        # priced as gpt-5, but claude-opus-5-7 must not be priced as claude-opus-5.
        if undated.startswith(candidate) and rest.startswith("-"):
            first = rest[1:].split("-", 1)[0]
            if first and not first[0].isdigit():
                found.append(candidate)
    return found


def lookup(
    model: str, overrides: Mapping[str, Price | Mapping[str, Any]] | None = None
) -> Price | None:
    """The price of ``model``, or None when it is unknown (unpriced, never free).

    Tried in order: the exact name, the name without a snapshot date (-2024-07-18), then the
    longest known name it extends (gpt-4o-mini-search-preview → gpt-4o-mini). ``overrides``
    maps model names to a Price or a dict of rates for this call only.
    """
    table, _, discount = _merged(overrides)
    matches = _candidates(model, list(table))
    if not matches:
        return None
    name = matches[0]
    return _to_price(name, table[name], discount)


def set_price(
    model: str,
    *,
    input: float | None = None,
    output: float | None = None,
    cached_input: float | None = None,
    cache_read: float | None = None,
    cache_write_5m: float | None = None,
    cache_write_1h: float | None = None,
    max_output_tokens: int | None = None,
    provider: str | None = None,
) -> Price:
    """Register ``model``'s rates (USD per million tokens) for the rest of this process.

    Rates left out are inherited from the shipped entry of the same name, so a new model needs
    ``input=`` and ``output=``, and a known one only what changed. Returns the price now in
    effect. :func:`clear_prices` removes every set_price override.
    """
    given = {
        "input": input,
        "output": output,
        "cached_input": cached_input,
        "cache_read": cache_read,
        "cache_write_5m": cache_write_5m,
        "cache_write_1h": cache_write_1h,
        "max_output_tokens": max_output_tokens,
        "provider": provider,
    }
    entry = _check_entry(
        model, {k: v for k, v in given.items() if v is not None}, "set_price", partial=True
    )
    entry.update(as_of=dt.date.today().isoformat(), note="set with set_price()")
    name = model.strip().lower()
    with _lock:
        previous = _set_prices.get(name)
        _set_prices[name] = {**(previous or {}), **entry}
    try:
        price = lookup(name)
    except ConfigurationError:
        with _lock:  # leave no half-specified override behind
            if previous is None:
                _set_prices.pop(name, None)
            else:
                _set_prices[name] = previous
        raise
    assert price is not None  # the override we just added always matches exactly
    return price


def clear_prices() -> None:
    """Forget every :func:`set_price` override (BATCHFRAME_PRICES still applies)."""
    with _lock:
        _set_prices.clear()


def table_date() -> str:
    """The date of the shipped price table, e.g. "2026-11-23"."""
    return _shipped()[0]


def known_models() -> list[str]:
    """Every priced model name, overrides included, sorted."""
    return sorted(_merged(None)[0])
