"""The durable job store: SQLite with migrations for state, files for data."""

from .db import JobRecord, ShardRecord, Store
from .files import atomic_writer, private_dir, read_parquet, write_bytes, write_parquet
from .lock import JobLock

__all__ = [
    "JobLock",
    "JobRecord",
    "ShardRecord",
    "Store",
    "atomic_writer",
    "private_dir",
    "read_parquet",
    "write_bytes",
    "write_parquet",
]
