"""The distinct requests of a job: in memory when small, spilled to an Arrow file when large.

A frame of up to one chunk of rows keeps its rendered requests as one in-memory table. A
larger frame is rendered a chunk at a time and each chunk's new requests are appended to an
Arrow IPC file, so the rendered text of the whole job never has to fit in memory; every reader
(shard writer, token counter, pilot, ``to_jsonl``) walks the requests a batch at a time.

The file is read with plain reads, not a memory map, so a batch's pages leave the process
once the batch is dropped instead of adding to its resident memory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..records import part_name
from ..store.files import private_dir, private_file

# Rows per record batch in a requests file: the unit every reader holds at once.
FILE_BATCH_ROWS = 100_000
# A stored job's requests (Arrow IPC file format, uncompressed: written and read at disk speed).
REQUESTS_FILE = "requests.arrow"


def requests_schema(n_parts: int) -> pa.Schema:
    fields = [pa.field("key", pa.int64())]
    fields += [pa.field(part_name(i), pa.large_string()) for i in range(n_parts)]
    return pa.schema(fields)


class DistinctRequests:
    """Requests ``0 .. len-1`` and their message parts (``key``, ``part0``, ``part1``...)."""

    def __init__(
        self,
        n_parts: int,
        rows: int,
        *,
        table: pa.Table | None = None,
        path: Path | None = None,
        owned: bool = False,
    ) -> None:
        if (table is None) == (path is None):
            raise ValueError("DistinctRequests holds either a table or a file")
        self.n_parts = n_parts
        self._rows = rows
        self._table = table
        self._path = path
        # A spill file nobody saved into a job goes when this object does.
        self._cleanup = weakref.finalize(self, _remove, path) if owned and path else None

    @classmethod
    def in_memory(cls, table: pa.Table) -> DistinctRequests:
        return cls(table.num_columns - 1, table.num_rows, table=table)

    @classmethod
    def open(cls, path: Path, n_parts: int, rows: int) -> DistinctRequests:
        """The requests a stored job keeps in ``path``."""
        return cls(n_parts, rows, path=path)

    def __len__(self) -> int:
        return self._rows

    @property
    def spilled(self) -> bool:
        return self._path is not None

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Every request in key order, a record batch at a time."""
        if self._table is not None:
            # An in-memory job is small enough to be handled whole: one batch, no copy.
            table = self._table
            if any(column.num_chunks != 1 for column in table.columns):
                table = table.combine_chunks()
            batches = table.to_batches()
            # No requests (every row has an input error) is still one batch, an empty one,
            # so the token count has something to count.
            schema = requests_schema(self.n_parts)
            yield batches[0] if batches else pa.RecordBatch.from_pylist([], schema=schema)
            return
        assert self._path is not None
        with pa.OSFile(str(self._path)) as source:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)

    def select(self, keys: np.ndarray) -> Iterator[tuple[pa.RecordBatch, np.ndarray, np.ndarray]]:
        """The batches that hold any of ``keys``, in key order, each with the keys it holds
        (sorted, once each) and their rows in the batch."""
        wanted = np.unique(np.asarray(keys, dtype=np.int64))
        if not len(wanted):
            return
        for batch in self.batches():
            if not batch.num_rows:
                continue
            first = int(batch.column(0)[0].as_py())  # a batch holds consecutive keys
            lo, hi = np.searchsorted(wanted, [first, first + batch.num_rows])
            if hi > lo:
                yield batch, wanted[lo:hi], wanted[lo:hi] - first

    def take(self, keys: np.ndarray) -> list[pa.Array]:
        """The parts of the requests ``keys``, in the order given."""
        keys = np.asarray(keys, dtype=np.int64)
        if self._table is not None:
            index = pa.array(keys, type=pa.int64())
            return [
                self._table.column(part_name(i)).take(index).combine_chunks()
                for i in range(self.n_parts)
            ]
        pieces = [batch.take(pa.array(rows)) for batch, _, rows in self.select(keys)]
        found = pa.Table.from_batches(pieces, schema=requests_schema(self.n_parts))
        order = pa.array(np.searchsorted(np.unique(keys), keys))
        return [
            found.column(part_name(i)).take(order).combine_chunks() for i in range(self.n_parts)
        ]

    def save(self, path: Path) -> DistinctRequests:
        """The requests kept at ``path`` (a job folder's REQUESTS_FILE).

        A spill file is moved there (the staging folder is inside the store, so this is a
        rename); an in-memory table is written out and stays in memory for this process.
        """
        if self._path is None:
            assert self._table is not None
            partial = path.with_name(f".{path.name}.partial")
            with RequestsWriter(partial, self.n_parts) as writer:
                writer.write(self._table)
            partial.replace(path)
            return self
        if self._cleanup is not None:
            self._cleanup.detach()
            self._cleanup = None
        self._path.replace(path)
        self._path = path
        return self

    def discard(self) -> None:
        """Remove a spill file now rather than when this object is collected."""
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None


class RequestSink:
    """Where prepare() puts each chunk's new requests: a list of tables, or (``spill_to`` a
    folder) a file there named by the process, so leftovers of a dead process can be swept."""

    def __init__(self, n_parts: int, *, spill_to: Path | None) -> None:
        self.n_parts = n_parts
        self._tables: list[pa.Table] = []
        self._writer: RequestsWriter | None = None
        self._rows = 0
        if spill_to is not None:
            staging = private_dir(spill_to)
            _sweep(staging)
            path = staging / f"requests-{os.getpid()}-{secrets.token_hex(4)}.arrow"
            self._writer = RequestsWriter(path, n_parts)

    def __len__(self) -> int:
        return self._rows

    def add(self, table: pa.Table) -> None:
        self._rows += table.num_rows
        if self._writer is not None:
            self._writer.write(table)
        else:
            self._tables.append(table)

    def finish(self) -> DistinctRequests:
        if self._writer is None:
            schema = requests_schema(self.n_parts)
            table = pa.concat_tables(self._tables) if self._tables else schema.empty_table()
            return DistinctRequests.in_memory(table)
        self._writer.close()
        return DistinctRequests(self.n_parts, self._rows, path=self._writer.path, owned=True)

    def abandon(self) -> None:
        """After an error: the spill file goes."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer.path.unlink(missing_ok=True)


def _sweep(staging: Path) -> None:
    """Remove spill files left by processes that died while preparing."""
    for path in staging.glob("requests-*-*.arrow"):
        try:
            os.kill(int(path.name.split("-")[1]), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except (ValueError, OSError):  # not our name, or not ours to signal: leave it
            continue


class RequestsWriter:
    """Appends requests (in key order) to an Arrow IPC file."""

    def __init__(self, path: Path, n_parts: int) -> None:
        self.path = path
        self.rows = 0
        self._schema = requests_schema(n_parts)
        self._sink = pa.OSFile(str(private_file(path)), "wb")
        self._writer = pa.ipc.new_file(self._sink, self._schema)

    def write(self, requests: pa.Table) -> None:
        for batch in requests.to_batches(max_chunksize=FILE_BATCH_ROWS):
            self._writer.write_batch(batch)
            self.rows += batch.num_rows

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._sink.close()

    def __enter__(self) -> RequestsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
