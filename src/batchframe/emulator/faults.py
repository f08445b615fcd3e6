"""Fault configuration: what the emulator should break, and how often.

A `FaultPlan` is plain data (JSON round-trippable). The emulator keeps a private copy whose
countdown fields (`times` of an HTTP rule, `truncate_downloads`, `fail_validation`, ...) are
consumed as the faults fire, so the caller's object is never mutated.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

MB = 1024 * 1024

# Keys an `http_errors` rule may carry.
_RULE_KEYS = {
    "method",
    "path",
    "status",
    "times",
    "retry_after",
    "retry_after_ms",
    "should_retry",
    "message",
}

# Countdown fields: each positive value means "the next N ...".
COUNTDOWNS = (
    "truncate_downloads",
    "fail_validation",
    "expire_batches",
    "stall_batches",
    "duplicate_lines",
    "drop_lines",
    "unknown_lines",
)


@dataclass
class FaultPlan:
    """Faults to inject. Every field is optional; the defaults inject nothing.

    Rates pick rows by a seeded, stable hash of the canonical request body, so the same body
    always gets the same fate for a given emulator seed.
    """

    row_error_rate: float = 0.0
    """Share of rows that fail permanently with a 400 invalid_request_error."""
    row_server_error_rate: float = 0.0
    """Share of rows that fail with a 500 on their first attempt only."""
    http_errors: list[dict[str, Any]] = field(default_factory=list)
    """Rules like {"method": "POST", "path": "/v1/files", "status": 429, "times": 2,
    "retry_after": 1, "should_retry": False}. `path` is a prefix, or an fnmatch pattern when it
    contains * ? or [. `times` defaults to 1; null means every matching call. `retry_after`
    (seconds) and `retry_after_ms` set the retry-after / retry-after-ms headers (the SDKs
    ignore a retry-after of 0 but honour retry-after-ms: 1), `should_retry` x-should-retry."""
    truncate_downloads: int = 0
    """The next N file-content / results downloads are cut off after about half the body."""
    fail_validation: int = 0
    """The next N OpenAI batches end `failed` with errors.data."""
    expire_batches: int = 0
    """The next N batches expire part-way: about half the rows complete, the rest expire."""
    stall_batches: int = 0
    """The next N batches never progress: they sit in_progress until cancelled or 24 h pass."""
    duplicate_lines: int = 0
    """The next output/results file repeats that many lines."""
    drop_lines: int = 0
    """The next output/results file silently omits that many success lines."""
    unknown_lines: int = 0
    """The next output/results file gains that many lines with an unknown custom_id."""
    enqueued_token_limit: int | None = None
    """Per-model cap on input tokens enqueued in non-terminal OpenAI batches."""
    max_requests_per_file: int = 50_000
    max_file_bytes: int = 200 * MB
    anthropic_max_requests: int = 100_000
    anthropic_max_bytes: int = 256 * MB

    def __post_init__(self) -> None:
        for name in ("row_error_rate", "row_server_error_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"FaultPlan.{name} must be a number, got {value!r}")
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"FaultPlan.{name} must be between 0 and 1, got {value!r}")
        for name in (
            *COUNTDOWNS,
            "max_requests_per_file",
            "max_file_bytes",
            "anthropic_max_requests",
            "anthropic_max_bytes",
        ):
            _check_int(name, getattr(self, name))
        if self.enqueued_token_limit is not None:
            _check_int("enqueued_token_limit", self.enqueued_token_limit)
        if not isinstance(self.http_errors, list):
            raise ValueError("FaultPlan.http_errors must be a list of rule dicts")
        self.http_errors = [_check_rule(rule) for rule in self.http_errors]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultPlan:
        if not isinstance(data, dict):
            raise ValueError("a FaultPlan must be given as a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown FaultPlan field(s): {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> FaultPlan:
        return cls.from_dict(json.loads(text))

    def copy(self) -> FaultPlan:
        return copy.deepcopy(self)

    def take(self, name: str) -> bool:
        """Consume one unit of a countdown field; True if the fault fires."""
        value = getattr(self, name)
        if value > 0:
            setattr(self, name, value - 1)
            return True
        return False

    def take_all(self, name: str) -> int:
        """Consume a whole countdown field (line faults apply to one file at once)."""
        value = int(getattr(self, name))
        setattr(self, name, 0)
        return value

    def match_http_error(self, method: str, path: str) -> dict[str, Any] | None:
        """Return (and count down) the first rule matching this call, if any."""
        for rule in self.http_errors:
            times = rule.get("times", 1)
            if times is not None and times <= 0:
                continue
            rule_method = rule.get("method")
            if rule_method and str(rule_method).upper() != method.upper():
                continue
            pattern = str(rule.get("path", "*"))
            if any(c in pattern for c in "*?["):
                matched = fnmatch.fnmatchcase(path, pattern)
            else:
                matched = path.startswith(pattern)
            if not matched:
                continue
            if times is not None:
                rule["times"] = times - 1
            return rule
        return None


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"FaultPlan.{name} must be a non-negative integer, got {value!r}")


def _check_rule(rule: Any) -> dict[str, Any]:
    if not isinstance(rule, dict):
        raise ValueError(f"an http_errors rule must be a dict, got {rule!r}")
    unknown = sorted(set(rule) - _RULE_KEYS)
    if unknown:
        raise ValueError(f"unknown http_errors rule key(s): {', '.join(unknown)}")
    status = rule.get("status", 500)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"http_errors status must be an HTTP error code, got {status!r}")
    times = rule.get("times", 1)
    if times is not None and (isinstance(times, bool) or not isinstance(times, int)):
        raise ValueError(f"http_errors times must be an integer or null, got {times!r}")
    return {**rule, "status": status, "times": times}
