"""The durable job store: SQLite for jobs, shards and a log; a folder of files per job.

Layout under ``BATCHFRAME_HOME``::

    jobs.db                 jobs, shards (remote ids and states), log; schema by migrations
    jobs/<job id>/
        frame.parquet       the input frame, so attach() can rebuild the result anywhere
        rows.parquet        row position -> request key, and per-row input errors
        requests.arrow      the distinct requests (rendered message parts)
        shards/<n>.jsonl    the exact lines uploaded for shard n
        shards/<n>.keys.parquet   the request keys in shard n
        downloads/<n>/      output and error files as downloaded
        results/<n>.parquet decoded results of shard n (the result cache)
        lock                held by the process driving the job

Every write that precedes a remote side effect commits before the call is made.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import JobNotFoundError, StoreError
from .files import private_dir, private_file
from .migrations import MIGRATIONS


@dataclass(frozen=True)
class JobRecord:
    id: str
    fingerprint: str
    created_at: float
    updated_at: float
    provider: str
    model: str
    state: str
    spec: dict[str, Any]
    options: dict[str, Any]
    rows: int
    requests: int
    estimated_cost: float | None = None
    message: str | None = None
    cancel_requested: bool = False
    finished_at: float | None = None


@dataclass(frozen=True)
class ShardRecord:
    job_id: str
    shard: int
    attempt: int
    state: str
    requests: int
    bytes: int
    upload_name: str
    file_id: str | None = None
    batch_id: str | None = None
    remote_status: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    intent_at: float | None = None
    submitted_at: float | None = None
    ended_at: float | None = None
    not_before: float | None = None
    error: str | None = None
    cancel_sent_at: float | None = None


_JSON_FIELDS = {"spec", "options", "counts"}


class Store:
    """Thread-safe access to one BATCHFRAME_HOME."""

    def __init__(self, home: Path) -> None:
        self.home = private_dir(home)
        self.path = home / "jobs.db"
        self._lock = threading.RLock()
        self._depth = 0  # transaction nesting, guarded by _lock
        try:
            # Created owner-only before SQLite opens it: its -wal and -shm files copy this mode.
            private_file(self.path)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, timeout=30, isolation_level=None
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"The job store at {self.path} cannot be opened ({exc}). Point BATCHFRAME_HOME "
                "at another folder, or move the damaged file aside."
            ) from exc

    # -- schema -----------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, at REAL)")
            done = {row[0] for row in db.execute("SELECT name FROM migrations")}
            for name, sql in MIGRATIONS:
                if name not in done:
                    for statement in sql.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute("INSERT INTO migrations VALUES (?, ?)", (name, time.time()))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; nested calls join the outer one (all or nothing)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- jobs -------------------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        return private_dir(self.home / "jobs" / job_id)

    def insert_job(self, job: JobRecord) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, fingerprint, created_at, updated_at, provider, model, "
                "state, spec, options, rows, requests, estimated_cost, message, "
                "cancel_requested, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job.id,
                    job.fingerprint,
                    job.created_at,
                    job.updated_at,
                    job.provider,
                    job.model,
                    job.state,
                    json.dumps(job.spec),
                    json.dumps(job.options),
                    job.rows,
                    job.requests,
                    job.estimated_cost,
                    job.message,
                    int(job.cancel_requested),
                    job.finished_at,
                ),
            )

    def job(self, job_id: str) -> JobRecord:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(
                f"No job {job_id!r} in the store at {self.home}. batchframe.jobs() lists the "
                "stored jobs; BATCHFRAME_HOME selects the store."
            )
        return _job(row)

    def find_job(self, fingerprint: str) -> JobRecord | None:
        """The newest job with this fingerprint that was not cancelled or failed outright."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE fingerprint = ? AND state NOT IN ('cancelled') "
                "ORDER BY created_at DESC LIMIT 1",
                (fingerprint,),
            ).fetchone()
        return None if row is None else _job(row)

    def jobs(self) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_at DESC").fetchall()
        return [_job(r) for r in rows]

    def update_job(self, job_id: str, **changes: Any) -> None:
        changes["updated_at"] = time.time()
        _update(self, "jobs", "id = ?", (job_id,), changes)

    # -- shards -----------------------------------------------------------------------------

    def insert_shards(self, shards: list[ShardRecord]) -> None:
        with self.transaction() as db:
            for s in shards:
                db.execute(
                    "INSERT INTO shards (job_id, shard, attempt, state, requests, bytes, "
                    "upload_name, not_before) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        s.job_id,
                        s.shard,
                        s.attempt,
                        s.state,
                        s.requests,
                        s.bytes,
                        s.upload_name,
                        s.not_before,
                    ),
                )

    def shards(self, job_id: str) -> list[ShardRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM shards WHERE job_id = ? ORDER BY shard", (job_id,)
            ).fetchall()
        return [_shard(r) for r in rows]

    def update_shard(self, job_id: str, shard: int, **changes: Any) -> None:
        _update(self, "shards", "job_id = ? AND shard = ?", (job_id, shard), changes)

    def batch_ids(self) -> frozenset[str]:
        """Every remote batch id recorded by any job in this store."""
        with self._lock:
            rows = self._db.execute("SELECT batch_id FROM shards WHERE batch_id IS NOT NULL")
            return frozenset(row[0] for row in rows.fetchall())

    def claim_cancel(self, job_id: str, shard: int) -> bool:
        """True for exactly one caller per shard: the one that should send the cancel."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE shards SET cancel_sent_at = ? "
                "WHERE job_id = ? AND shard = ? AND cancel_sent_at IS NULL",
                (time.time(), job_id, shard),
            )
            return cursor.rowcount == 1

    def collect_shard(
        self, job_id: str, shard: int, new_shards: list[ShardRecord], **changes: Any
    ) -> None:
        """Mark a shard collected and plan its retry shards in one transaction."""
        with self.transaction():
            self.update_shard(job_id, shard, state="collected", **changes)
            self.insert_shards(new_shards)

    # -- log --------------------------------------------------------------------------------

    def log(self, job_id: str, kind: str, message: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO log VALUES (?, ?, ?, ?)", (job_id, time.time(), kind, message))

    def log_entries(self, job_id: str) -> list[tuple[float, str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT at, kind, message FROM log WHERE job_id = ? ORDER BY at", (job_id,)
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]


def _update(
    store: Store, table: str, where: str, key: tuple[Any, ...], changes: dict[str, Any]
) -> None:
    if not changes:
        return
    names = list(changes)
    values = [json.dumps(v) if n in _JSON_FIELDS else v for n, v in changes.items()]
    sets = ", ".join(f"{n} = ?" for n in names)
    with store.transaction() as db:
        cursor = db.execute(f"UPDATE {table} SET {sets} WHERE {where}", (*values, *key))
        if cursor.rowcount != 1:
            raise StoreError(
                f"Expected to update one {table[:-1]} for {key!r}, updated {cursor.rowcount}."
            )


def _job(row: sqlite3.Row) -> JobRecord:
    data = {f.name: row[f.name] for f in fields(JobRecord)}
    data["spec"] = json.loads(data["spec"])
    data["options"] = json.loads(data["options"])
    data["cancel_requested"] = bool(data["cancel_requested"])
    return JobRecord(**data)


def _shard(row: sqlite3.Row) -> ShardRecord:
    data = {f.name: row[f.name] for f in fields(ShardRecord)}
    data["counts"] = json.loads(data["counts"]) if data["counts"] else {}
    return ShardRecord(**data)
