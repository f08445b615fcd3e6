"""The in-memory store: files, batches, counters, the fault plan and the clock, behind one lock.

Every handler takes `State.lock` for its whole read-modify-write, so the threaded server
never sees a half-updated batch.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from .fates import Fate
from .faults import FaultPlan
from .timeline import Schedule

Provider = Literal["openai", "anthropic"]


class Clock:
    """Real time plus an offset that `advance()` grows: lets tests jump hours in an instant."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"advance() needs a finite, non-negative number, got {seconds!r}")
        self.offset += seconds


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: float
    expires_at: float | None
    seq: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": int(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None if self.expires_at is None else int(self.expires_at),
            "status_details": None,
        }


@dataclass
class Row:
    custom_id: str
    body: dict[str, Any]
    """OpenAI: the line's `body`; Anthropic: the request's `params`."""
    body_hash: str
    fate: Fate
    done_at: float = math.inf


@dataclass
class BatchRecord:
    id: str
    provider: Provider
    seq: int
    rows: list[Row]
    schedule: Schedule
    info: dict[str, Any]
    """Provider-specific request fields (endpoint, metadata, anthropic-version, ...)."""
    model: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    token_estimate: int | None = None
    # Filled once, when the batch is first seen terminal.
    materialized: bool = False
    output_file_id: str | None = None
    error_file_id: str | None = None
    results: bytes | None = None
    counts: dict[str, int] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    deleted: bool = False


@dataclass
class Counters:
    uploads: int = 0
    batches_created: int = 0
    batch_ids: list[str] = field(default_factory=list)
    requests_submitted: int = 0
    submissions_by_body: Counter[str] = field(default_factory=Counter)
    max_in_one_batch: Counter[str] = field(default_factory=Counter)
    retryable_failures_by_body: Counter[str] = field(default_factory=Counter)
    custom_ids_by_batch: dict[str, int] = field(default_factory=dict)
    http_calls: Counter[str] = field(default_factory=Counter)
    http_errors_injected: int = 0
    runs_by_body: Counter[str] = field(default_factory=Counter)
    """Submissions that ran or may still run: the attempt number triggers and rates see."""
    realtime_calls: int = 0
    realtime_attempts_by_body: Counter[str] = field(default_factory=Counter)
    token_count_calls: int = 0
    cancels: int = 0
    downloads: int = 0
    truncated_downloads: int = 0

    def duplicate_submissions(self) -> int:
        total = 0
        for body, n in self.submissions_by_body.items():
            expected = self.max_in_one_batch[body] + self.retryable_failures_by_body[body]
            total += max(0, n - expected)
        return total


class State:
    def __init__(self, *, processing_seconds: float, seed: int, faults: FaultPlan) -> None:
        if not math.isfinite(processing_seconds) or processing_seconds < 0:
            raise ValueError("processing_seconds must be a finite, non-negative number")
        self.lock = threading.RLock()
        self.clock = Clock()
        self.processing_seconds = float(processing_seconds)
        self.seed = seed
        self.plan = faults.copy()
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, BatchRecord] = {}
        self.seq_of: dict[str, int] = {}  # survives deletes: list cursors stay valid
        self.counters = Counters()
        self._seq = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def reset(self) -> None:
        with self.lock:
            self.files.clear()
            self.batches.clear()
            self.seq_of.clear()
            self.counters = Counters()

    # -- files -----------------------------------------------------------------------------

    def add_file(
        self,
        file_id: str,
        filename: str,
        purpose: str,
        data: bytes,
        expires_at: float | None,
        *,
        created_at: float | None = None,
    ) -> StoredFile:
        seq = self.next_seq()
        created = self.clock.now() if created_at is None else created_at
        stored = StoredFile(file_id, filename, purpose, data, created, expires_at, seq)
        self.files[file_id] = stored
        self.seq_of[file_id] = seq
        return stored

    def live_file(self, file_id: str) -> StoredFile | None:
        """A file that exists and has not passed its expires_at (expired files vanish)."""
        stored = self.files.get(file_id)
        if stored is None:
            return None
        if stored.expires_at is not None and self.clock.now() >= stored.expires_at:
            del self.files[file_id]
            return None
        return stored

    def live_files(self) -> list[StoredFile]:
        return [f for f in list(self.files.values()) if self.live_file(f.id) is not None]

    # -- batches ---------------------------------------------------------------------------

    def add_batch(self, batch: BatchRecord) -> None:
        self.batches[batch.id] = batch
        self.seq_of[batch.id] = batch.seq
        c = self.counters
        c.batches_created += 1
        c.batch_ids.append(batch.id)
        c.requests_submitted += len(batch.rows)
        c.custom_ids_by_batch[batch.id] = len(batch.rows)
        in_batch = Counter(row.body_hash for row in batch.rows)
        for body, n in in_batch.items():
            c.max_in_one_batch[body] = max(c.max_in_one_batch[body], n)

    def attempt(self, body_hash: str) -> int:
        """Record one batch submission of this body; return its attempt number (0 = first).

        Submissions that never ran through no fault of the row (a batch that failed
        validation, was cancelled first, or expired before reaching it) are handed back by
        `unrun`, so "EMU:500 fails the first attempt" means the first attempt that ran.
        """
        self.counters.submissions_by_body[body_hash] += 1
        n = self.counters.runs_by_body[body_hash]
        self.counters.runs_by_body[body_hash] = n + 1
        return n

    def unrun(self, rows: list[Row]) -> None:
        for row in rows:
            if self.counters.runs_by_body[row.body_hash] > 0:
                self.counters.runs_by_body[row.body_hash] -= 1

    def realtime_attempt(self, body_hash: str) -> int:
        n = self.counters.realtime_attempts_by_body[body_hash]
        self.counters.realtime_attempts_by_body[body_hash] = n + 1
        return n

    def record_retryable(self, rows: list[Row]) -> None:
        for row in rows:
            self.counters.retryable_failures_by_body[row.body_hash] += 1

    def get_batch(self, batch_id: str, provider: Provider) -> BatchRecord | None:
        batch = self.batches.get(batch_id)
        if batch is None or batch.provider != provider or batch.deleted:
            return None
        return batch

    def newest_first(self, provider: Provider) -> list[BatchRecord]:
        found = [b for b in self.batches.values() if b.provider == provider and not b.deleted]
        return sorted(found, key=lambda b: b.seq, reverse=True)

    # -- stats -----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        c = self.counters
        return {
            "uploads": c.uploads,
            "files": len(self.live_files()),
            "batches_created": c.batches_created,
            "batch_ids": list(c.batch_ids),
            "requests_submitted": c.requests_submitted,
            "submissions_by_body": dict(c.submissions_by_body),
            # Submissions that ran (and would be billed): refused, cancelled-first and
            # expired-before-reached submissions are not counted here.
            "runs_by_body": {body: n for body, n in c.runs_by_body.items() if n},
            "retryable_failures_by_body": dict(c.retryable_failures_by_body),
            "duplicate_submissions": c.duplicate_submissions(),
            "custom_ids_by_batch": dict(c.custom_ids_by_batch),
            "http_calls": dict(sorted(c.http_calls.items())),
            "http_errors_injected": c.http_errors_injected,
            "realtime_calls": c.realtime_calls,
            "token_count_calls": c.token_count_calls,
            "cancels": c.cancels,
            "downloads": c.downloads,
            "truncated_downloads": c.truncated_downloads,
            "clock_offset": self.clock.offset,
            "faults_remaining": self.plan.to_dict(),
        }
