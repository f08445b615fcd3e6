"""The job state machine: submit, poll, collect, retry, finish, with write-ahead records.

Shard states::

    planned -> uploading -> uploaded -> creating -> submitted -> ended -> collected
                                                  \\-> (cancelled before submission) skipped

Before each remote side effect the intended step is committed (``uploading``, ``creating``);
its result is committed right after. A process killed between the two resumes by asking the
provider whether the step happened (``find_upload`` / ``find_batch``), so nothing is uploaded
or created twice. Results are decoded into ``results/<shard>.parquet`` before the shard is
marked collected, and retry shards are planned in the same transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .crashpoints import reached
from .errors import JobBusyError, ProviderError, ProviderRequestError
from .estimate.actual import total_costs
from .events import Event, EventKind, JobSnapshot, Observer
from .memory import steady_pool
from .outcomes import PENDING, Settled, load_results, settle, write_results
from .planner import planned_shard, write_shards
from .prompts.distinct import REQUESTS_FILE, DistinctRequests
from .providers.base import Provider, RemoteStatus
from .providers.decode import Row, rows_to_table
from .records import FAILED, OK, RETRY, RequestSpec
from .store import (
    JobLock,
    JobRecord,
    ShardRecord,
    Store,
    private_dir,
    read_parquet,
)

log = logging.getLogger("batchframe")

IN_FLIGHT = ("uploading", "uploaded", "creating", "submitted")
DONE = ("collected", "skipped")
# Batch-level failures that mean "the queue is full right now", not "these requests are bad".
_CAPACITY_CODES = {"token_limit_exceeded", "rate_limit_exceeded", "too_many_requests"}
_MAX_CONTROL_FAILURES = 8


@dataclass
class RunnerOptions:
    poll_interval: float
    max_attempts: int
    max_in_flight: int
    retry_delay: float = 60.0


@dataclass
class _Tally:
    settled: Settled | None = None
    retries: int = 0
    actual_cost: float | None = None
    realtime_cost: float | None = None
    failures: dict[int, int] = field(default_factory=dict)


class Runner:
    """Drives one stored job. Only the holder of the job's lock submits or collects."""

    def __init__(
        self,
        store: Store,
        job_id: str,
        provider: Provider,
        options: RunnerOptions,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.provider = provider
        self.options = options
        self.observers = list(observers)
        self.folder = store.job_dir(job_id)
        self.lock = JobLock(self.folder / "lock")
        self.stop = threading.Event()
        self._tally = _Tally()
        self._spec: RequestSpec | None = None
        self._started_at = time.time()

    # -- public -----------------------------------------------------------------------------

    @property
    def job(self) -> JobRecord:
        return self.store.job(self.job_id)

    @property
    def spec(self) -> RequestSpec:
        if self._spec is None:
            self._spec = RequestSpec.from_json(self.job.spec)
        return self._spec

    def drive(self, *, block: bool = True) -> JobRecord:
        """Run the job until it ends (or one step when ``block`` is False)."""
        if not self.lock.acquire():
            raise JobBusyError(
                f"Job {self.job_id} is being driven by another process; its progress is in the "
                "store. Wait for that process, or stop it and run the same call again."
            )
        try:
            job = self.job
            if job.state in ("finished", "cancelled"):
                return job
            self._started_at = job.created_at
            if job.state in ("planned", "failed"):
                self.store.update_job(self.job_id, state="running", message=None)
            self._refresh_tally()
            self._emit("started")
            while True:
                self.step()
                job = self.job
                if job.state in ("finished", "cancelled") or not block:
                    return job
                self.stop.wait(self.options.poll_interval)
                if self.stop.is_set():
                    return self.job
        except ProviderError as exc:
            self.store.update_job(self.job_id, state="failed", message=str(exc))
            self.store.log(self.job_id, "failed", str(exc))
            self._emit("failed", message=str(exc))
            raise
        finally:
            self.lock.release()

    def step(self) -> None:
        """One pass: honour a cancel, submit what may be submitted, poll, collect, finish."""
        job = self.job
        shards = self.store.shards(self.job_id)
        if job.cancel_requested:
            for shard in shards:
                if shard.state in ("planned", "uploading", "uploaded"):
                    self.store.update_shard(self.job_id, shard.shard, state="skipped")
            shards = self.store.shards(self.job_id)

        active = sum(s.state in IN_FLIGHT for s in shards)
        now = time.time()
        for shard in shards:
            if shard.state in ("uploading", "uploaded", "creating") or (
                shard.state == "planned"
                and active < self.options.max_in_flight
                and (shard.not_before or 0) <= now
                and not job.cancel_requested
            ):
                if shard.state == "planned":
                    active += 1
                self._guarded(shard, self._submit)

        for shard in self.store.shards(self.job_id):
            if shard.state == "submitted":
                self._guarded(shard, self._poll)
        for shard in self.store.shards(self.job_id):
            if shard.state == "ended":
                self._guarded(shard, self._collect)

        shards = self.store.shards(self.job_id)
        if all(s.state in DONE for s in shards):
            self._finish()
        else:
            self._emit("progress")

    # -- submit -----------------------------------------------------------------------------

    def _submit(self, shard: ShardRecord) -> None:
        path = self.folder / "shards" / f"{shard.shard}.jsonl"
        file_id = shard.file_id
        state = shard.state
        if state in ("planned", "uploading"):
            if state == "uploading":
                file_id = self.provider.find_upload(shard.upload_name)
            if file_id is None:
                self.store.update_shard(
                    self.job_id, shard.shard, state="uploading", intent_at=time.time()
                )
                reached("before_upload")
                file_id = self.provider.upload(path, shard.upload_name)
                reached("after_upload")
            self.store.update_shard(self.job_id, shard.shard, state="uploaded", file_id=file_id)
            state = "uploaded"
        if self.job.cancel_requested:
            self.store.update_shard(self.job_id, shard.shard, state="skipped")
            return
        tag = {"batchframe_job": self.job_id, "batchframe_shard": str(shard.shard)}
        batch_id = None
        if state == "creating":
            # Never adopt a batch any job in this store already owns (Anthropic batches carry
            # no metadata, so adoption there goes by size and creation time).
            claimed = self.store.batch_ids()
            batch_id = self.provider.find_batch(
                tag, since=shard.intent_at or 0.0, total=shard.requests, claimed=claimed
            )
        if batch_id is None:
            self.store.update_shard(
                self.job_id, shard.shard, state="creating", intent_at=time.time()
            )
            reached("before_create")
            batch_id = self.provider.create(self.spec, path, file_id, tag)
            reached("after_create")
        self.store.update_shard(
            self.job_id, shard.shard, state="submitted", batch_id=batch_id, submitted_at=time.time()
        )
        self.store.log(self.job_id, "submitted", f"shard {shard.shard} -> {batch_id}")
        self._emit("submitted", shard=shard.shard, batch_id=batch_id)

    # -- poll and collect -------------------------------------------------------------------

    def _poll(self, shard: ShardRecord) -> None:
        assert shard.batch_id is not None
        status = self.provider.retrieve(shard.batch_id)
        if (
            self.job.cancel_requested
            and status.outcome == "running"
            and status.status in ("in_progress", "validating")
            and self.store.claim_cancel(self.job_id, shard.shard)
        ):
            # Submitted while (or after) the user cancelled: cancel it now. If it ended in
            # between, the provider refuses the cancel; the next poll sees the end.
            try:
                status = self.provider.cancel(shard.batch_id)
            except ProviderRequestError as exc:
                self.store.log(self.job_id, "note", f"cancel of {shard.batch_id}: {exc}")
        counts = {"total": status.total, "succeeded": status.succeeded, "failed": status.failed}
        changes: dict[str, Any] = {"remote_status": status.status, "counts": counts}
        if status.terminal:
            changes.update(state="ended", ended_at=time.time())
        self.store.update_shard(self.job_id, shard.shard, **changes)

    @steady_pool()
    def _collect(self, shard: ShardRecord) -> None:
        assert shard.batch_id is not None
        status = self.provider.retrieve(shard.batch_id)
        downloads = self.folder / "downloads" / str(shard.shard)
        private_dir(downloads)
        paths = self.provider.download(status, downloads) if status.output_refs else []
        reached("after_download")
        decoded = self.provider.decode(paths) if paths else rows_to_table([])
        keys = read_parquet(self.folder / "shards" / f"{shard.shard}.keys.parquet")["key"]
        results, notes = _reconcile(decoded, keys, status, cancelled=self.job.cancel_requested)
        results = results.append_column("shard", pa.array(np.full(results.num_rows, shard.shard)))
        results = results.append_column(
            "attempt", pa.array(np.full(results.num_rows, shard.attempt))
        )
        result_dir = self.folder / "results"
        private_dir(result_dir)
        write_results(result_dir / f"{shard.shard}.parquet", results)
        for note in notes:
            self.store.log(self.job_id, "note", f"shard {shard.shard}: {note}")
        new_shards = self._plan_retries(shard, results, status)
        reached("before_collect")
        self.store.collect_shard(self.job_id, shard.shard, new_shards, remote_status=status.status)
        self._refresh_tally()

    def _plan_retries(
        self, shard: ShardRecord, results: pa.Table, status: RemoteStatus
    ) -> list[ShardRecord]:
        if self.job.cancel_requested:
            return []
        fate = results["fate"]
        retry = results.filter(pc.equal(fate, RETRY))
        answered = set(results.filter(pc.equal(fate, OK))["key"].to_pylist())
        keys = np.unique(np.asarray(retry["key"].to_numpy(zero_copy_only=False), dtype=np.int64))
        if answered:
            keys = keys[~np.isin(keys, np.fromiter(answered, dtype=np.int64))]
        if len(keys) == 0:
            return []
        capacity = status.outcome == "failed" and any(
            code in _CAPACITY_CODES for code, _ in status.errors
        )
        # A full queue is not the requests' fault: wait and resubmit without spending an attempt.
        attempt = shard.attempt if capacity else shard.attempt + 1
        if attempt > self.options.max_attempts:
            return []
        delay = self.options.retry_delay if capacity else 0.0
        existing = self.store.shards(self.job_id)
        max_requests = self.job.options.get("max_shard_requests")
        if capacity and not any(s.state in IN_FLIGHT and s.shard != shard.shard for s in existing):
            # Refused with none of ours queued: waiting alone may never help, so halve the
            # shard. A single request refused on an empty queue can never fit: give up.
            if len(keys) == 1:
                return []
            max_requests = (len(keys) + 1) // 2
        requests = DistinctRequests.open(
            self.folder / REQUESTS_FILE, len(self.spec.roles), self.job.requests
        )
        next_no = max(s.shard for s in existing) + 1
        written = write_shards(
            self.folder / "shards",
            self.provider,
            self.spec,
            requests,
            keys,
            first_number=next_no,
            max_requests=max_requests,
            max_bytes=self.job.options.get("max_shard_bytes"),
        )
        records = [
            planned_shard(self.job_id, shard, attempt=attempt, not_before=time.time() + delay)
            for shard in written
        ]
        self._tally.retries += len(keys)
        self.store.log(
            self.job_id,
            "retry",
            f"{len(keys)} request(s) from shard {shard.shard} resubmitted as attempt {attempt}",
        )
        self._emit("retry", requests=len(keys), attempt=attempt)
        return records

    # -- finish -----------------------------------------------------------------------------

    def _finish(self) -> None:
        job = self.job
        self._refresh_tally(final=True)
        state = "cancelled" if job.cancel_requested else "finished"
        settled = self._tally.settled
        assert settled is not None
        message = (
            f"{settled.succeeded:,} of {job.requests:,} requests answered, "
            f"{settled.errored:,} with errors."
        )
        self.store.update_job(self.job_id, state=state, finished_at=time.time(), message=message)
        self.store.log(self.job_id, state, message)
        self._emit("cancelled" if state == "cancelled" else "finished", message=message)

    # -- bookkeeping ------------------------------------------------------------------------

    def _guarded(self, shard: ShardRecord, action: Callable[[ShardRecord], None]) -> None:
        """Run a control-plane step; transient provider trouble waits for the next pass."""
        try:
            action(shard)
            self._tally.failures.pop(shard.shard, None)
        except ProviderError as exc:
            if not exc.retryable:
                raise
            count = self._tally.failures.get(shard.shard, 0) + 1
            self._tally.failures[shard.shard] = count
            self.store.log(self.job_id, "transient", f"shard {shard.shard}: {exc}")
            if count >= _MAX_CONTROL_FAILURES:
                raise
            if shard.state == "planned":
                backoff = min(300.0, self.options.poll_interval * 2**count)
                self.store.update_shard(self.job_id, shard.shard, not_before=time.time() + backoff)

    def _refresh_tally(self, *, final: bool = False) -> None:
        job = self.job
        shards = self.store.shards(self.job_id)
        pending_keys = [
            read_parquet(self.folder / "shards" / f"{s.shard}.keys.parquet")["key"].to_numpy()
            for s in shards
            if s.state not in DONE
        ]
        in_flight = np.concatenate(pending_keys) if pending_keys and not final else None
        with steady_pool():
            results = load_results(self.folder / "results")
            self._tally.settled = settle(results, job.requests, in_flight=in_flight)
        self._tally.retries = int(sum(s.requests for s in shards if s.attempt > 1))
        self._tally.actual_cost, self._tally.realtime_cost = _costs(job.model, self._tally.settled)

    def snapshot(self, message: str | None = None) -> JobSnapshot:
        return build_snapshot(
            self.store, self.job, self._tally.settled, self._tally, message=message
        )

    def _emit(self, kind: EventKind, message: str | None = None, **detail: object) -> None:
        if not self.observers:
            return
        event = Event(kind, self.snapshot(message), dict(detail))
        for observer in list(self.observers):
            try:
                observer.on_event(event)
            except Exception:  # an observer must never break the job
                log.exception("batchframe: progress observer failed; detaching it")
                self.observers.remove(observer)


def _reconcile(
    decoded: pa.Table, keys: pa.ChunkedArray, status: RemoteStatus, *, cancelled: bool
) -> tuple[pa.Table, list[str]]:
    """This shard's results: only its own keys, a row for every key, user cancels final."""
    notes = []
    shard_keys = np.asarray(keys.to_numpy(), dtype=np.int64)
    got = np.asarray(decoded["key"].to_numpy(zero_copy_only=False), dtype=np.int64)
    # Membership and counts over the key range (keys are 0..requests-1): linear, no sorting.
    top = int(shard_keys.max()) + 1 if len(shard_keys) else 0
    in_shard = np.zeros(top, dtype=bool)
    in_shard[shard_keys] = True
    ours = (got >= 0) & (got < top)
    ours[ours] = in_shard[got[ours]]
    if (~ours).any():
        notes.append(f"ignored {int((~ours).sum())} result line(s) with ids this shard never sent")
        decoded = decoded.filter(pa.array(ours))
        got = got[ours]
    seen = np.bincount(got, minlength=top)
    repeats = len(got) - int(np.count_nonzero(seen))
    if repeats:
        notes.append(f"{repeats} duplicated result line(s); the answer wins")
    missing = shard_keys[seen[shard_keys] == 0]
    extra: list[Row] = []
    if len(missing):
        if status.outcome == "failed":
            code, message = (
                status.errors[0] if status.errors else ("batch_failed", "the batch failed")
            )
            fate = RETRY if code in _CAPACITY_CODES else FAILED
            text = f"the batch failed validation: {message}"
            extra = [Row(f"r{k}", fate, error_code=code, error_message=text) for k in missing]
        elif status.outcome in ("cancelled", "expired"):
            code = "batch_cancelled" if status.outcome == "cancelled" else "batch_expired"
            extra = [
                Row(
                    f"r{k}",
                    RETRY,
                    error_code=code,
                    error_message=f"the batch was {status.outcome} before this request ran",
                )
                for k in missing
            ]
        else:
            notes.append(
                f"{len(missing)} request(s) missing from the provider's files; resubmitting"
            )
            extra = [
                Row(
                    f"r{k}",
                    RETRY,
                    error_code="missing_result",
                    error_message="the provider returned no result for this request",
                )
                for k in missing
            ]
    table = pa.concat_tables([decoded, rows_to_table(extra)]) if extra else decoded
    if cancelled:
        is_retry = pc.equal(table["fate"], RETRY)
        table = table.set_column(
            table.schema.get_field_index("fate"),
            "fate",
            pc.if_else(is_retry, FAILED, table["fate"]),
        )
        table = table.set_column(
            table.schema.get_field_index("error_code"),
            "error_code",
            pc.if_else(is_retry, "cancelled", table["error_code"]),
        )
        table = table.set_column(
            table.schema.get_field_index("error_message"),
            "error_message",
            pc.if_else(
                is_retry,
                pa.scalar("cancelled by the user before this request ran", pa.large_string()),
                table["error_message"],
            ),
        )
    return table, notes


def _costs(model: str, settled: Settled | None) -> tuple[float | None, float | None]:
    """(billed, realtime) USD of the answered requests; pilot answers bill at realtime."""
    return total_costs(model, None if settled is None else settled.table)


def build_snapshot(
    store: Store,
    job: JobRecord,
    settled: Settled | None,
    tally: _Tally | None = None,
    *,
    message: str | None = None,
) -> JobSnapshot:
    shards = store.shards(job.id)
    running = [s for s in shards if s.state in IN_FLIGHT or s.state == "ended"]
    succeeded = settled.succeeded if settled is not None else 0
    failed = settled.errored if settled is not None else 0
    # Requests the provider reports done in batches we have not collected yet.
    remote_done = sum(
        int(s.counts.get("succeeded", 0)) for s in running if s.state in ("submitted", "ended")
    )
    succeeded_view = min(job.requests - failed, succeeded + remote_done)
    pending = max(0, job.requests - succeeded_view - failed)
    now = time.time()
    eta = None
    done = succeeded_view + failed
    if 0 < done < job.requests and job.state == "running" and remote_done > 0:
        eta = (now - job.created_at) / done * (job.requests - done)
    if tally is None:  # a snapshot read from the store (status(), another process driving)
        tally = _Tally(settled=settled, retries=sum(s.requests for s in shards if s.attempt > 1))
        tally.actual_cost, tally.realtime_cost = _costs(job.model, settled)
    actual = tally.actual_cost
    realtime = tally.realtime_cost
    # A finished job's clock stops when it finished, not when someone looks at it.
    ended = job.state in ("finished", "cancelled") and job.finished_at is not None
    updated_at = job.finished_at if ended and job.finished_at is not None else now
    return JobSnapshot(
        job_id=job.id,
        provider=job.provider,
        model=job.model,
        state=job.state,  # type: ignore[arg-type]
        rows=job.rows,
        requests=job.requests,
        succeeded=succeeded_view,
        failed=failed,
        pending=pending,
        shards_total=len(shards),
        shards_in_flight=sum(s.state in IN_FLIGHT for s in shards),
        remote_statuses=tuple(s.remote_status or s.state for s in running),
        retries_scheduled=tally.retries,
        started_at=job.created_at,
        updated_at=updated_at,
        eta_seconds=eta,
        estimated_cost=job.estimated_cost,
        actual_cost=actual,
        savings=None if actual is None or realtime is None else realtime - actual,
        message=message or job.message,
    )


def pending_keys_of(store: Store, folder: Path, job_id: str) -> np.ndarray | None:
    shards = [s for s in store.shards(job_id) if s.state not in DONE]
    if not shards:
        return None
    return np.concatenate(
        [
            read_parquet(folder / "shards" / f"{s.shard}.keys.parquet")["key"].to_numpy()
            for s in shards
        ]
    )


__all__ = ["PENDING", "Runner", "RunnerOptions", "build_snapshot", "pending_keys_of"]
