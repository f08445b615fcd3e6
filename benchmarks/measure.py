"""Time, CPU time and peak memory of one block of work in this process (stdlib only).

Peak memory is the kernel's high-water mark of resident memory (VmHWM). It is reset right
before the measured block (``/proc/self/clear_refs``), so the figure belongs to the block,
not to whatever the process did while loading its inputs; where the reset is not available
the figure is the whole process's peak, and ``peak_reset`` says so.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _peak_kb() -> int:
    hwm = _status_kb("VmHWM")
    if hwm is not None:
        return hwm
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _cpu() -> float:
    """CPU seconds of this process (all threads) and of its finished child processes."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@contextmanager
def measured() -> Iterator[dict[str, Any]]:
    """Measure the block; the dict is filled in when the block ends."""
    gc.collect()
    if hasattr(os, "sync"):
        # Flush what earlier runs wrote, so that their disk writeback does not slow this one.
        os.sync()
    result: dict[str, Any] = {}
    reset = _reset_peak()
    start_kb = _status_kb("VmRSS") or 0
    cpu0, wall0 = _cpu(), time.perf_counter()
    yield result
    wall = time.perf_counter() - wall0
    cpu = _cpu() - cpu0
    peak_kb = _peak_kb()
    result.update(
        seconds=wall,
        cpu_seconds=cpu,
        peak_mb=peak_kb / 1024,  # the process's resident peak during the block
        stage_peak_mb=max(peak_kb - start_kb, 0) / 1024,  # above what it held at the start
        start_mb=start_kb / 1024,
        peak_reset=reset,
    )


def run_and_report(work: Callable[[], dict[str, Any] | None]) -> None:
    """Measure ``work()`` and print one JSON line (the worker protocol)."""
    with measured() as result:
        extra = work()
    if extra:
        result["extra"] = extra
    sys.stdout.write("BENCH-RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip teardown of large objects: it is not part of the measurement
