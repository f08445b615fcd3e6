"""BatchJob, jobs() and attach(): handles on stored jobs, usable from any process."""

from __future__ import annotations

import html
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import settings
from .crashpoints import reached
from .errors import JobBusyError, JobError, ProviderError
from .estimate.actual import CostSummary, load_estimate, result_costs, summarize
from .events import JobSnapshot, Observer
from .join import Columns, key_level, to_rows
from .memory import steady_pool
from .outcomes import load_results, settle
from .planner import INDEX_PICKLE
from .progress import (
    JobsFrame,
    display_job,
    in_notebook,
    interrupted_note,
    make_observer,
    snapshot_html,
    snapshot_text,
)
from .providers import Provider, make_provider
from .records import ResponseFormat
from .runner import DONE, Runner, RunnerOptions, build_snapshot, pending_keys_of
from .store import JobRecord, Store, read_parquet

_STORES: dict[Path, Store] = {}
_STORES_LOCK = threading.Lock()


def open_store(home: str | Path | None = None) -> Store:
    """The store for ``home`` (keyword > BATCHFRAME_HOME > ~/.batchframe), one per process."""
    path = settings.home(home)
    with _STORES_LOCK:
        if path not in _STORES:
            _STORES[path] = Store(path)
        return _STORES[path]


class BatchJob:
    """A handle on one stored job: ``status()``, ``wait()``, ``result()``, ``cancel()``."""

    def __init__(
        self,
        store: Store,
        job_id: str,
        *,
        client: Any | None = None,
        frame: pd.DataFrame | None = None,
        progress: Any = True,
        poll_interval: float | None = None,
        max_attempts: int | None = None,
        max_in_flight: int | None = None,
        schema_model: Any = None,
    ) -> None:
        self._store = store
        self._id = job_id
        self._client = client
        self._frame = frame
        self._progress = progress
        self._schema_model = schema_model
        self._options = RunnerOptions(
            poll_interval=settings.poll_interval(poll_interval),
            max_attempts=settings.max_attempts(max_attempts),
            max_in_flight=settings.max_in_flight(max_in_flight),
            retry_delay=max(1.0, 2 * settings.poll_interval(poll_interval)),
        )
        self._provider: Provider | None = None
        self._observer: Observer | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        # Set when the driving thread ends. wait() waits on this, not on Thread.join(): on
        # Python 3.11 a join() interrupted by Ctrl-C marks a running thread as dead, and
        # ipykernel then closes that thread's output pipe (the panel would stop updating).
        self._thread_done = threading.Event()
        self._runner: Runner | None = None

    # -- identity ---------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def record(self) -> JobRecord:
        return self._store.job(self._id)

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            self._provider = make_provider(self.record.provider, self._client)
        return self._provider

    @property
    def folder(self) -> Path:
        return self._store.job_dir(self._id)

    # -- progress ---------------------------------------------------------------------------

    def _observers(self) -> list[Observer]:
        if self._observer is None and self._progress is not False and self._progress is not None:
            self._observer = make_observer(self._progress, self)
            show = getattr(self._observer, "show", None)
            if callable(show):
                show()
        return [self._observer] if self._observer is not None else []

    def _make_runner(self) -> Runner:
        if self._runner is None:
            self._runner = Runner(
                self._store, self._id, self.provider, self._options, self._observers()
            )
        return self._runner

    # -- driving ----------------------------------------------------------------------------

    def start(self) -> BatchJob:
        """Drive the job from a background thread; the call returns at once."""
        if self.record.state in ("finished", "cancelled"):
            snapshot = self.status(refresh=False)  # from the store: counts, cost, retries
            for observer in self._observers():
                observer.on_event(_event(snapshot))
            return self
        if self._thread is not None and not self._thread_done.is_set():
            return self
        runner = self._make_runner()

        done = self._thread_done = threading.Event()

        def run() -> None:
            try:
                runner.drive()
            except JobBusyError:
                self._observe(None)
            except BaseException as exc:  # surfaced by wait()/result()
                self._thread_error = exc
            finally:
                done.set()

        self._thread = threading.Thread(target=run, name=f"batchframe-{self._id}", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> BatchJob:
        """Block until every row has a result or an error (or ``timeout`` seconds pass).

        In a notebook the job is driven from a background thread while the cell waits, so an
        interrupt (the kernel's stop button) ends the wait but not the job: the panel keeps
        updating and its Cancel button works once the cell is free.
        """
        if (
            self._thread is None
            and in_notebook()
            and self.record.state not in ("finished", "cancelled")
        ):
            self.start()
        if self._thread is not None:
            try:
                ended = self._thread_done.wait(timeout)
            except KeyboardInterrupt:  # stop waiting, not the job: the thread drives on
                self._note(interrupted_note(self._id, background=True))
                raise
            if not ended:
                raise TimeoutError(f"Job {self._id} is still running after {timeout} s.")
            self._thread.join()
            self._thread = None
            if self._thread_error is not None:
                error, self._thread_error = self._thread_error, None
                raise error
        if self.record.state in ("finished", "cancelled"):
            return self
        runner = self._make_runner()
        try:
            if timeout is None:
                runner.drive()
            else:
                deadline = time.monotonic() + timeout
                while runner.drive(block=False).state not in ("finished", "cancelled"):
                    if time.monotonic() >= deadline:
                        raise TimeoutError(f"Job {self._id} is still running after {timeout} s.")
                    time.sleep(self._options.poll_interval)
        except JobBusyError:
            self._observe(timeout)
        except KeyboardInterrupt:
            self._note(interrupted_note(self._id, background=False))
            raise
        return self

    def _note(self, text: str) -> None:
        show_note = getattr(self._observer, "show_note", None)
        if callable(show_note):
            show_note(text)

    def wait_submitted(self, timeout: float | None = None) -> BatchJob:
        """Block until the batches that may run now are created remotely (for ``--no-wait``).

        After this the process may exit: the provider works on, and a later ``attach`` or a
        re-run collects the results.
        """
        if self._thread is None or self._thread_done.is_set():
            self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread is not None and not self._thread_done.is_set():
            shards = self._store.shards(self._id)
            waiting = [
                s for s in shards if s.state in ("planned", "uploading", "uploaded", "creating")
            ]
            submitted = sum(s.state == "submitted" for s in shards)
            if not waiting or submitted >= self._options.max_in_flight:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"Job {self._id} is not submitted after {timeout} s.")
            time.sleep(0.05)
        if self._thread_error is not None:
            error, self._thread_error = self._thread_error, None
            raise error
        return self

    def _observe(self, timeout: float | None) -> None:
        """Another process drives the job: follow its progress through the store."""
        deadline = None if timeout is None else time.monotonic() + timeout
        observers = self._observers()
        while True:
            snap = self.status(refresh=False)
            for observer in observers:
                observer.on_event(_event(snap))
            if snap.terminal:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"Job {self._id} is still running after {timeout} s.")
            time.sleep(self._options.poll_interval)
            runner = Runner(self._store, self._id, self.provider, self._options, observers)
            if runner.lock.acquire():  # the other driver is gone: take over
                runner.lock.release()
                runner.drive()
                # A job that had already ended emits nothing from drive(): loop once more so
                # the observers see its final state.

    def status(self, refresh: bool = True) -> JobSnapshot:
        """Where the job stands. With ``refresh`` and no driver running, polls the provider once."""
        job = self.record
        if (
            refresh
            and job.state not in ("finished", "cancelled")
            and (self._thread is None or self._thread_done.is_set())
        ):
            runner = Runner(self._store, self._id, self.provider, self._options, ())
            try:
                runner.drive(block=False)
                return runner.snapshot()
            except JobBusyError:
                pass
        results = load_results(self.folder / "results")
        pending = pending_keys_of(self._store, self.folder, self._id)
        settled = settle(results, job.requests, in_flight=pending)
        return build_snapshot(self._store, self.record, settled)

    def cancel(self) -> JobSnapshot:
        """Cancel the remote batches; rows not yet answered get a 'cancelled' error."""
        job = self.record
        if job.state in ("finished", "cancelled"):
            return self.status(refresh=False)
        self._store.update_job(self._id, cancel_requested=1, state="cancelling")
        self._store.log(self._id, "cancel", "cancel requested by the user")
        for shard in self._store.shards(self._id):
            if (
                shard.state == "submitted"
                and shard.batch_id
                and self._store.claim_cancel(self._id, shard.shard)
            ):
                try:
                    self.provider.cancel(shard.batch_id)
                except ProviderError as exc:  # already ended, or transient: the runner copes
                    self._store.log(self._id, "note", f"cancel of {shard.batch_id}: {exc}")
            elif shard.state == "planned":
                self._store.update_shard(self._id, shard.shard, state="skipped")
        return self.status(refresh=False)

    # -- results ----------------------------------------------------------------------------

    def result(self, timeout: float | None = None) -> pd.DataFrame:
        """The input frame plus the output and error columns (waits for the job to end)."""
        self.wait(timeout)
        return self._assemble()

    @steady_pool()
    def _assemble(self) -> pd.DataFrame:
        job = self.record
        options = job.options
        columns = Columns(options["output"])
        frame = self._frame if self._frame is not None else self._stored_frame()
        rows = read_parquet(self.folder / "rows.parquet")
        results = load_results(self.folder / "results")
        shards = self._store.shards(self._id)
        unfinished = None
        if not all(s.state in DONE for s in shards):
            unfinished = (
                "not_answered: the job stopped before this row was answered "
                f"({job.message}); run the same call again to resume"
            )
        if job.state == "cancelled":
            unfinished = "cancelled: the job was cancelled before this request was submitted"
        settled = settle(results, job.requests)
        rf_json = job.spec.get("response_format")
        rf = ResponseFormat.from_json(rf_json) if rf_json else None
        values, error, raw = key_level(
            settled,
            job.requests,
            response_format=rf,
            columns=columns,
            unfinished=unfinished,
            prefix=options.get("prefix"),
            model=self._schema_model,
        )
        extra = _usage_columns(settled, job, columns) if options.get("usage") else None
        reached("mid_join")
        row_keys = np.asarray(rows["key"].to_numpy(), dtype=np.int64)
        input_errors = rows["input_error"].combine_chunks()
        frame = frame.drop(
            columns=[c for c in _owned(frame, columns, values) if c in frame.columns]
        )
        return to_rows(frame, row_keys, input_errors, values, error, raw, columns, extra=extra)

    def _stored_frame(self) -> pd.DataFrame:
        frame = read_parquet(self.folder / "frame.parquet").to_pandas()
        exact_index = self.folder / INDEX_PICKLE
        if exact_index.exists():
            frame.index = pickle.loads(exact_index.read_bytes())  # our own file, see planner
        return frame

    def summary(self) -> CostSummary:
        """Tokens, cost, savings against realtime, and the estimate against the actual cost.

        A read-only mapping (``summary["cost"]``) that shows as a table in a notebook.
        """
        job = self.record
        settled = settle(load_results(self.folder / "results"), job.requests)
        return summarize(
            job_id=job.id,
            state=job.state,
            model=job.model,
            rows=job.rows,
            requests=job.requests,
            succeeded=settled.succeeded,
            errored=settled.errored,
            results=settled.table,
            estimate=load_estimate(self.folder),
            estimated_cost=job.estimated_cost,
        )

    # -- reprs ------------------------------------------------------------------------------

    def __repr__(self) -> str:
        try:
            return snapshot_text(self.status(refresh=False))
        except Exception:  # a repr must not raise
            return f"<BatchJob {self._id}>"

    def _repr_html_(self) -> str:
        try:
            return snapshot_html(self.status(refresh=False))
        except Exception:
            return f"<code>BatchJob {html.escape(self._id)}</code>"

    def _ipython_display_(self) -> None:
        """In a notebook: the live panel when this handle has one, else the snapshot."""
        display_job(
            self._observer, lambda: {"text/plain": repr(self), "text/html": self._repr_html_()}
        )


def _owned(frame: pd.DataFrame, columns: Columns, values: pd.DataFrame) -> list[str]:
    """Columns a previous run of this job left on the frame; the fresh ones replace them."""
    kinds = ("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens", "cost")
    usage = [f"{columns.output}_{k}" for k in kinds]
    names = {columns.output, columns.error, columns.raw, *values.columns, *usage}
    return [n for n in frame.columns if n in names]


def _usage_columns(settled: Any, job: JobRecord, columns: Columns) -> pd.DataFrame:
    t = settled.table.reindex(pd.RangeIndex(job.requests))
    data = {
        f"{columns.output}_input_tokens": t["input_tokens"].astype("Int64"),
        f"{columns.output}_output_tokens": t["output_tokens"].astype("Int64"),
        f"{columns.output}_cached_tokens": t["cached_tokens"].astype("Int64"),
    }
    if job.provider == "anthropic":  # Anthropic bills cache writes separately
        data[f"{columns.output}_cache_write_tokens"] = t["cache_write_tokens"].astype("Int64")
    costs = result_costs(job.model, t)  # pilot answers at realtime, the rest at batch rates
    if costs is not None:
        data[f"{columns.output}_cost"] = pd.array(costs[0], dtype="Float64")
    return pd.DataFrame(data)


def _event(snapshot: JobSnapshot) -> Any:
    from .events import Event

    kind = {"finished": "finished", "failed": "failed", "cancelled": "cancelled"}.get(
        snapshot.state, "progress"
    )
    return Event(kind, snapshot)  # type: ignore[arg-type]


def jobs(home: str | Path | None = None) -> pd.DataFrame:
    """The stored jobs, newest first (a DataFrame with a readable repr)."""
    store = open_store(home)
    records = store.jobs()
    frame = JobsFrame(
        [
            {
                "job_id": r.id,
                "created": pd.Timestamp(r.created_at, unit="s"),
                "state": r.state,
                "provider": r.provider,
                "model": r.model,
                "rows": r.rows,
                "requests": r.requests,
                "output": r.options.get("output"),
                "estimated_cost": r.estimated_cost,
                "message": r.message,
            }
            for r in records
        ],
        columns=[
            "job_id",
            "created",
            "state",
            "provider",
            "model",
            "rows",
            "requests",
            "output",
            "estimated_cost",
            "message",
        ],
    )
    return frame


def attach(
    job_id: str,
    *,
    client: Any | None = None,
    home: str | Path | None = None,
    progress: Any = True,
    poll_interval: float | None = None,
) -> BatchJob:
    """A BatchJob for a stored job, from any process.

    In a notebook kernel the job is followed at once, as re-running its cell would: the live
    panel appears and a job still running is driven from a background thread (pass the same
    ``client=`` the job was started with). Elsewhere nothing starts until ``wait()``,
    ``result()`` or ``start()``.
    """
    store = open_store(home)
    store.job(job_id)  # raises JobNotFoundError with a helpful message
    job = BatchJob(store, job_id, client=client, progress=progress, poll_interval=poll_interval)
    if in_notebook():
        job.start()
    return job


__all__ = ["BatchJob", "JobError", "attach", "jobs", "open_store"]
