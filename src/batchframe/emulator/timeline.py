"""When a batch passes each stage, computed up front and read lazily against the clock.

Nothing runs in the background: a batch's status is a pure function of its schedule and
"now", so advancing the clock moves every batch at once.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

DAY = 86_400.0
CANCEL_SHARE = 0.1  # cancelling lasts this share of processing_seconds ...
CANCEL_MAX = 600.0  # ... but no more than the real ~10 minutes

Stage = Literal[
    "validating",
    "failed",
    "running",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
]
TERMINAL: frozenset[str] = frozenset({"failed", "completed", "expired", "cancelled"})


@dataclass
class Schedule:
    created: float
    validated: float
    """End of validating (equals `created` for Anthropic, which has no such stage)."""
    run_end: float
    """When the last runnable row is done; math.inf for a stalled batch."""
    finalized: float
    expires: float
    processing_seconds: float
    fails: bool = False
    """Validation fails: the batch ends `failed` at `validated`."""
    expires_early: bool = False
    """Some rows never run: the batch ends expired at `run_end`."""
    cancel_at: float | None = None
    cancel_end: float | None = None

    @classmethod
    def plan(
        cls,
        created: float,
        processing_seconds: float,
        *,
        validating_share: float,
        finalizing_share: float,
        stalled: bool = False,
    ) -> Schedule:
        validated = created + validating_share * processing_seconds
        run_end = created + (1.0 - finalizing_share) * processing_seconds
        finalized = created + processing_seconds
        if stalled:
            run_end = finalized = math.inf
        return cls(created, validated, run_end, finalized, created + DAY, processing_seconds)

    def natural_end(self) -> tuple[Stage, float]:
        """How and when the batch ends if nobody cancels it."""
        if self.fails:
            return "failed", self.validated
        if self.run_end >= self.expires:
            return "expired", self.expires
        if self.expires_early:
            return "expired", self.run_end
        return "completed", self.finalized

    def cut(self) -> float:
        """The time after which no more rows run; rows done by then have run."""
        if self.cancel_at is not None:
            return self.cancel_at
        stage, at = self.natural_end()
        return self.validated if stage == "failed" else min(at, self.run_end)

    def stage(self, now: float) -> Stage:
        if self.cancel_at is not None and self.cancel_end is not None:
            return "cancelled" if now >= self.cancel_end else "cancelling"
        end, at = self.natural_end()
        if now < self.validated:
            return "validating"
        if end == "failed":
            return "failed"
        if end == "expired":
            return "expired" if now >= at else "running"
        if now < self.run_end:
            return "running"
        return "finalizing" if now < self.finalized else "completed"

    def ended_at(self, now: float) -> float | None:
        """Time the batch reached its terminal stage, or None while it is still going."""
        stage = self.stage(now)
        if stage not in TERMINAL:
            return None
        if stage == "cancelled":
            return self.cancel_end
        return self.natural_end()[1]

    def cancel(self, now: float) -> None:
        self.cancel_at = now
        self.cancel_end = now + min(CANCEL_SHARE * self.processing_seconds, CANCEL_MAX)

    def row_times(self, runnable: list[bool], rng: random.Random) -> list[float]:
        """Completion time per row, spread evenly over the run in a shuffled order.

        Rows that will never run (and every row of a stalled batch) get math.inf.
        """
        times = [math.inf] * len(runnable)
        slots = [i for i, ok in enumerate(runnable) if ok]
        rng.shuffle(slots)
        if math.isinf(self.run_end):
            return times
        span = self.run_end - self.validated
        for k, i in enumerate(slots):
            times[i] = self.validated + (k + 1) / len(slots) * span
        return times
