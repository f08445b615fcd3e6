"""Named points at which the crash-safety tests stop the process dead.

The store's write-ahead protocol claims that a process killed at *any* line resumes without a
duplicate upload, batch or charge. Random kills test that claim only by luck; these points let
the test suite kill a real process at each step that matters (tests/test_crash_safety.py):

    BATCHFRAME_CRASH_AT=after_upload python job.py    # SIGKILL right after the upload returns

Unset (always, outside those tests) a point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "BATCHFRAME_CRASH_AT"

POINTS = (
    "before_upload",  # upload intent stored, nothing sent
    "after_upload",  # file uploaded, its id not yet stored
    "before_create",  # create intent stored, nothing sent
    "after_create",  # batch created, its id not yet stored
    "mid_download",  # part of a result file on disk
    "after_download",  # result files on disk, not decoded
    "before_collect",  # results decoded and written, shard not yet marked collected
    "mid_join",  # the job finished, the frame half assembled
)


def reached(point: str) -> None:
    """SIGKILL this process if the crash tests asked to stop at ``point``."""
    if os.environ.get(ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
