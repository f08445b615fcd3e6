"""The Arrow memory pool for result handling.

Decoding and joining a million results allocates and frees a few GB of short-lived buffers.
pyarrow's default pool (mimalloc in current wheels) gives freed pages back to the system
almost at once, so the next buffer faults them in again; on small virtual machines that
alone made the join about 50 % slower (benchmarks/, parse + join stage). jemalloc (or the
system allocator where a wheel lacks it) keeps them for reuse. The pool is switched only
while batchframe works on results and restored afterwards; buffers remember their own pool,
so arrays made inside outlive the switch safely.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

_lock = threading.Lock()
_depth = 0
_saved: pa.MemoryPool | None = None


def _steady() -> pa.MemoryPool:
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.system_memory_pool()


@contextmanager
def steady_pool() -> Iterator[None]:
    """Allocate from a pool that keeps freed memory, for the duration of the block (or of
    each call, used as a decorator: ``@steady_pool()``).

    Re-entrant and safe across threads: the first block in sets the pool, the last one out
    puts back whatever was the default before.
    """
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = pa.default_memory_pool()
            pa.set_memory_pool(_steady())
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                pa.set_memory_pool(_saved)
                _saved = None
