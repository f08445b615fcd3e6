"""Job files: atomic writes, owner-only permissions, Parquet and JSONL helpers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by the owner only.

    Each folder we create is made private; folders that already existed above the first one we
    create (a home directory, say) are left as they are.
    """
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=PRIVATE_DIR)
        with contextlib.suppress(PermissionError):
            folder.chmod(PRIVATE_DIR)  # mkdir's mode is reduced by the umask
    with contextlib.suppress(PermissionError):
        path.chmod(PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty (if missing) with owner-only permissions."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    with contextlib.suppress(PermissionError):
        path.chmod(PRIVATE_FILE)
    return path


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[IO[bytes]]:
    """Write to a temporary sibling, fsync, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_parquet(path: Path, table: pa.Table, *, compression: str = "zstd") -> None:
    """Write ``table`` atomically. zstd is smallest; lz4 reads back about five times faster
    (for files that are read back whole soon after, such as decoded results)."""
    with atomic_writer(path) as stream:
        pq.write_table(table, stream, compression=compression)


def read_parquet(path: Path) -> pa.Table:
    return pq.read_table(path)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as stream:
        stream.write(data)
