"""Split requests into shards that respect a provider's per-batch limits."""

from __future__ import annotations

import numpy as np


def plan_shards(line_bytes: np.ndarray, *, max_requests: int, max_bytes: int) -> list[slice]:
    """Consecutive slices of at most ``max_requests`` lines and ``max_bytes`` bytes each.

    ``line_bytes`` holds the encoded size of each line (newline included). A single line over
    ``max_bytes`` is the caller's to reject before planning; here it gets a shard of its own.
    """
    n = len(line_bytes)
    slices: list[slice] = []
    start = 0
    cumulative = np.cumsum(line_bytes, dtype=np.int64)
    while start < n:
        base = int(cumulative[start - 1]) if start else 0
        # Last index whose running total from `start` stays within the byte budget.
        by_bytes = int(np.searchsorted(cumulative, base + max_bytes, side="right"))
        end = min(n, start + max_requests, max(by_bytes, start + 1))
        slices.append(slice(start, end))
        start = end
    return slices
