"""What happens to one request: succeed, fail (and how), never run. Decided at submission.

The fate depends on the request content, the attempt number of that exact body and the fault
plan -- never on custom_id, position or time -- so tests can target single rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from .faults import FaultPlan

TRIGGER_400 = "EMU:400"
TRIGGER_500 = "EMU:500"
TRIGGER_429 = "EMU:429"
TRIGGER_STATUS0 = "EMU:status0"
TRIGGER_EXPIRE = "EMU:expire"
TRIGGER_REFUSE = "EMU:refuse"
TRIGGER_MALFORMED = "EMU:malformed"
TRIGGER_EMPTY = "EMU:empty"

# A prompt longer than the context window is refused per row, as the services do. Counted in
# characters (about four per token) so the check costs nothing on ordinary rows.
CONTEXT_TOKENS = 128_000
CONTEXT_CHARS = CONTEXT_TOKENS * 4

FateKind = Literal["ok", "error", "status0", "expire"]


@dataclass(frozen=True)
class Fate:
    kind: FateKind
    status: int = 200
    message: str = ""
    param: str | None = None
    code: str | None = None

    @property
    def retryable(self) -> bool:
        """Would a resubmission of the same body reasonably succeed?"""
        if self.kind in ("status0", "expire"):
            return True
        return self.kind == "error" and (self.status == 429 or self.status >= 500)


OK = Fate("ok")
SERVER_ERROR = Fate(
    "error", 500, "The server had an error while processing your request. Sorry about that!"
)
RATE_LIMITED = Fate("error", 429, "Rate limit reached for requests. Please try again later.")


def canonical_body_hash(body: Any) -> str:
    """sha256 of the body as JSON with sorted keys, compact separators, UTF-8 kept."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _draw(seed: int, salt: str, body_hash: str) -> float:
    """A stable number in [0, 1) per (seed, salt, body)."""
    digest = hashlib.sha256(f"{seed}:{salt}:{body_hash}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def decide(text: str, body_hash: str, attempt: int, plan: FaultPlan, seed: int) -> Fate:
    """Fate from the triggers in `text` (the last user message) and the fault rates.

    `attempt` is 0 for the first submission of this exact body in any batch.
    """
    first = attempt == 0
    if len(text) > CONTEXT_CHARS:
        return Fate(
            "error",
            400,
            f"This model's maximum context length is {CONTEXT_TOKENS} tokens. However, your "
            f"messages resulted in about {len(text) // 4} tokens. Please reduce the length of "
            "the messages.",
            param="messages",
            code="context_length_exceeded",
        )
    if TRIGGER_400 in text:
        return Fate("error", 400, "Injected permanent error (EMU:400).", code="emulator_400")
    if TRIGGER_500 in text and first:
        return SERVER_ERROR
    if TRIGGER_429 in text and first:
        return RATE_LIMITED
    if TRIGGER_STATUS0 in text and first:
        return Fate("status0")
    if TRIGGER_EXPIRE in text and first:
        return Fate("expire")
    if plan.row_error_rate and _draw(seed, "4xx", body_hash) < plan.row_error_rate:
        return Fate("error", 400, "Injected permanent row error (FaultPlan.row_error_rate).")
    if (
        first
        and plan.row_server_error_rate
        and _draw(seed, "5xx", body_hash) < plan.row_server_error_rate
    ):
        return SERVER_ERROR
    return OK
