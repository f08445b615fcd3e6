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
# Rows rendered at once: a frame longer than this is prepared chunk by chunk with its rendered
# requests spilled to disk, so memory holds one chunk of prompts, not the job's.
DEFAULT_CHUNK_ROWS = 1_048_576


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
    return _positive_int(
        value, "BATCHFRAME_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, "max_attempts", "keyword "
    )


def max_in_flight(value: int | None = None) -> int:
    """How many shards may be running remotely at once."""
    return _positive_int(
        value, "BATCHFRAME_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT, "max_in_flight", "keyword "
    )


def chunk_rows(value: int | None = None) -> int:
    """Rows rendered at once: ``chunk_rows`` > ``BATCHFRAME_CHUNK_ROWS`` > 1,048,576."""
    return _positive_int(value, "BATCHFRAME_CHUNK_ROWS", DEFAULT_CHUNK_ROWS, "chunk_rows", "")


def _positive_int(value: int | None, env: str, default: int, name: str, keyword: str) -> int:
    raw: object = value if value is not None else os.environ.get(env)
    if raw is None or raw == "":
        return default
    try:
        number = int(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        where = f"{keyword}{name}= or {env}" if keyword else env
        raise ConfigurationError(
            f"{name} must be a whole number of at least 1, got {raw!r} ({where})."
        )
    return number


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
