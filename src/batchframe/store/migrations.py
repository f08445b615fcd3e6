"""Named, ordered schema migrations. Append only: never edit one that has shipped."""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "001_jobs_and_shards",
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            state TEXT NOT NULL,
            spec TEXT NOT NULL,
            options TEXT NOT NULL,
            rows INTEGER NOT NULL,
            requests INTEGER NOT NULL,
            estimated_cost REAL,
            message TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            finished_at REAL
        );
        CREATE INDEX jobs_by_fingerprint ON jobs (fingerprint, created_at);
        CREATE TABLE shards (
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            shard INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            state TEXT NOT NULL,
            requests INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            upload_name TEXT NOT NULL,
            file_id TEXT,
            batch_id TEXT,
            remote_status TEXT,
            counts TEXT,
            intent_at REAL,
            submitted_at REAL,
            ended_at REAL,
            not_before REAL,
            error TEXT,
            PRIMARY KEY (job_id, shard)
        );
        CREATE TABLE log (
            job_id TEXT NOT NULL,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL
        );
        CREATE INDEX log_by_job ON log (job_id, at);
        """,
    ),
    (
        # Cancel requests are claimed once per batch, so a user cancel and a runner that
        # notices it on its next poll never both call the provider.
        "002_shard_cancel_sent",
        "ALTER TABLE shards ADD COLUMN cancel_sent_at REAL;",
    ),
)
