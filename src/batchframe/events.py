"""Runner events and the observer protocol.

The runner emits an :class:`Event` at every step; each carries a complete
:class:`JobSnapshot`, so an observer (the notebook panel, the tqdm bar, a log) renders the
snapshot it is handed and keeps no state of its own. Observers must be quick and must not
raise: the runner logs and drops an observer that does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

EventKind = Literal[
    "started",  # the job is planned (or re-attached) and about to submit/poll
    "submitted",  # a shard was uploaded and its batch created
    "progress",  # a poll changed counts or remote status
    "retry",  # failed rows were scheduled into a new shard
    "finished",  # every row has a result or an error
    "failed",  # the job stopped on an error it cannot recover from
    "cancelled",  # the user cancelled; remaining rows carry a cancellation error
]

JobState = Literal["planned", "running", "finished", "failed", "cancelling", "cancelled"]

TERMINAL_STATES: frozenset[str] = frozenset({"finished", "failed", "cancelled"})


@dataclass(frozen=True)
class JobSnapshot:
    """Where a job stands, in numbers a person can check."""

    job_id: str
    provider: str
    model: str
    state: JobState
    rows: int  # input rows
    requests: int  # distinct requests after dedup (rows with an input error send none)
    succeeded: int  # requests with an answer
    failed: int  # requests with a final error
    pending: int  # requests still waiting for a final fate
    shards_total: int = 0
    shards_in_flight: int = 0
    remote_statuses: tuple[str, ...] = ()  # the providers' own words, one per shard in flight
    retries_scheduled: int = 0  # requests resubmitted so far
    started_at: float | None = None  # unix seconds
    updated_at: float | None = None
    eta_seconds: float | None = None  # None when there is no honest basis for one
    estimated_cost: float | None = None  # USD, batch prices, upper bound
    actual_cost: float | None = None  # USD so far, from reported usage
    savings: float | None = None  # USD saved against realtime so far
    message: str | None = None  # what failed and what to do, or a completion summary

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def fraction(self) -> float:
        return 1.0 if self.requests == 0 else self.done / self.requests

    @property
    def elapsed(self) -> float | None:
        if self.started_at is None or self.updated_at is None:
            return None
        return max(0.0, self.updated_at - self.started_at)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True)
class Event:
    kind: EventKind
    snapshot: JobSnapshot
    detail: dict[str, object] = field(default_factory=dict)


class Observer(Protocol):
    """Anything with ``on_event`` can watch a job."""

    def on_event(self, event: Event) -> None: ...


class CancelHandle(Protocol):
    """What a panel's Cancel button calls; BatchJob satisfies it."""

    def cancel(self) -> object: ...
