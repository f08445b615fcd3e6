"""Settings: an explicit keyword wins over the environment, which wins over the default.

Read at call time, never at import, so a notebook can change ``os.environ`` between cells.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigurationError

DEFAULT_HOME = Path("~/.batchframe")
DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_IN_FLIGHT = 8


def home(value: str | os.PathLike[str] | None = None) -> Path:
    """Where jobs are stored: ``home=`` > ``BATCHFRAME_HOME`` > ``~/.batchframe``."""
    raw = value if value is not None else os.environ.get("BATCHFRAME_HOME") or DEFAULT_HOME
    return Path(raw).expanduser().resolve()


def poll_interval(value: float | None = None) -> float:
    """Seconds between status polls: ``poll_interval=`` > ``BATCHFRAME_POLL_INTERVAL`` > 30."""
    return _positive_float(
        value, "BATCHFRAME_POLL_INTERVAL", DEFAULT_POLL_INTERVAL, "poll_interval"
    )


def max_attempts(value: int | None = None) -> int:
    """How many times a retryable row is submitted at most (first try included)."""
    raw = value if value is not None else os.environ.get("BATCHFRAME_MAX_ATTEMPTS")
    if raw is None:
        return DEFAULT_MAX_ATTEMPTS
    try:
        attempts = int(raw)
    except (TypeError, ValueError):
        attempts = 0
    if attempts < 1:
        raise ConfigurationError(
            f"max_attempts must be a whole number of at least 1, got {raw!r} "
            "(keyword max_attempts= or BATCHFRAME_MAX_ATTEMPTS)."
        )
    return attempts


def max_in_flight(value: int | None = None) -> int:
    """How many shards may be running remotely at once."""
    raw = value if value is not None else os.environ.get("BATCHFRAME_MAX_IN_FLIGHT")
    if raw is None:
        return DEFAULT_MAX_IN_FLIGHT
    try:
        n = int(raw)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ConfigurationError(
            f"max_in_flight must be a whole number of at least 1, got {raw!r} "
            "(keyword max_in_flight= or BATCHFRAME_MAX_IN_FLIGHT)."
        )
    return n


def _positive_float(value: float | None, env: str, default: float, keyword: str) -> float:
    raw: object = value if value is not None else os.environ.get(env)
    if raw is None or raw == "":
        return default
    try:
        number = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = -1.0
    if number < 0:
        raise ConfigurationError(
            f"{keyword} must be a number of seconds >= 0, got {raw!r} "
            f"(keyword {keyword}= or {env})."
        )
    return number
