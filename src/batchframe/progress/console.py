"""Console progress: a tqdm bar on a terminal, plain log lines everywhere else.

On a TTY the bar repaints in place. In CI logs and cron mail a repainting bar turns into a
wall of carriage returns, so when the stream is not a TTY we print one line when something
changed, at most every ``log_interval`` seconds (state changes and the end always print).
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm

from batchframe.events import Event, JobSnapshot
from batchframe.progress import render

# tqdm's own rate and remaining-time fields are left out on purpose: it measures from when
# the bar was created (a re-attached job starts half done) and would invent an ETA the runner
# has no basis for. Elapsed and ETA come from the snapshot instead, in the postfix.
_BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}"
_FALLBACK_COLUMNS = 100  # when the terminal reports no size (docker -t, some CI ptys)


def _size_options(file: TextIO) -> dict[str, Any]:
    """Follow the terminal's width, unless it reports none.

    A pty without a size (``docker run -t``, some CI runners) reads as -1 x -1, and tqdm then
    treats the bar as scrolled off screen and prints nothing; fall back to a fixed width.
    """
    try:
        columns = os.get_terminal_size(file.fileno()).columns
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        columns = 0
    if columns > 0:
        return {"dynamic_ncols": True}
    return {"ncols": _FALLBACK_COLUMNS, "nrows": 24}


def _postfix(s: JobSnapshot) -> str:
    parts = [f"ok={s.succeeded:,}", f"failed={s.failed:,}"]
    if remote := render.remote_status_text(s):
        parts.append(f"remote={remote}")
    parts.append(f"cost={render.format_usd(s.actual_cost)}")
    parts.append(f"elapsed={render.format_duration(s.elapsed)}")
    if eta := render.eta_text(s):
        parts.append(eta)
    return " ".join(parts)


def _log_line(s: JobSnapshot) -> str:
    line = f"batchframe {s.job_id}: {render.state_text(s)} · {render.counts_text(s)}"
    line += f" · cost {render.format_usd(s.actual_cost)}"
    line += f" · elapsed {render.format_duration(s.elapsed)}"
    if eta := render.eta_text(s):
        line += f" · {eta}"
    return line


class ConsoleProgress:
    """An :class:`~batchframe.events.Observer` for terminals and logs.

    ``file`` defaults to ``sys.stderr`` (looked up at call time so redirection works).
    ``bar`` forces the tqdm bar on or off; by default it follows ``file.isatty()``.
    """

    def __init__(
        self,
        file: TextIO | None = None,
        *,
        bar: bool | None = None,
        min_interval: float = 0.5,
        log_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._file = file
        self._force_bar = bar
        self.min_interval = min_interval
        self.log_interval = log_interval
        self._clock = clock
        self._bar: tqdm[None] | None = None
        self._last_draw = -float("inf")
        self._last_state: str | None = None
        self._last_logged: tuple[object, ...] | None = None

    @property
    def file(self) -> TextIO:
        return self._file if self._file is not None else sys.stderr

    @property
    def use_bar(self) -> bool:
        if self._force_bar is not None:
            return self._force_bar
        isatty = getattr(self.file, "isatty", None)
        return bool(isatty and isatty())

    def on_event(self, event: Event) -> None:
        s = event.snapshot
        if self.use_bar:
            self._draw_bar(s)
        else:
            self._log(s)
        if s.terminal:
            self._finish(s)
        self._last_state = s.state

    def show_note(self, text: str) -> None:
        """A line for the reader (an interrupted wait, say), below the bar."""
        if self._bar is not None:
            self._bar.write(text, file=self.file)
        else:
            self._write(text)

    # --- TTY: tqdm bar ----------------------------------------------------------------

    def _draw_bar(self, s: JobSnapshot) -> None:
        now = self._clock()
        if self._bar is None:
            self._bar = tqdm(
                total=s.requests,
                initial=s.done,  # a re-attached job starts part done; no 0% flash
                desc=f"batchframe {s.job_id}",
                unit="req",
                file=self.file,
                bar_format=_BAR_FORMAT,
                **_size_options(self.file),
                leave=True,
                # We throttle ourselves (below); tqdm's own refresh logic would only fire
                # from update(), and status-only changes never call it.
                mininterval=0,
            )
        elif (
            not s.terminal
            and s.state == self._last_state
            and now - self._last_draw < self.min_interval
        ):
            return
        bar = self._bar
        bar.total = s.requests
        bar.n = s.done
        bar.set_postfix_str(_postfix(s), refresh=False)
        bar.refresh()
        self._last_draw = now

    # --- not a TTY: log lines ---------------------------------------------------------

    def _log(self, s: JobSnapshot) -> None:
        if s.terminal:
            return  # the summary line says it all
        now = self._clock()
        key = (s.state, s.done, s.remote_statuses, s.shards_in_flight)
        if key == self._last_logged:
            return
        state_changed = s.state != self._last_state
        if not state_changed and now - self._last_draw < self.log_interval:
            return
        self._write(_log_line(s))
        self._last_logged = key
        self._last_draw = now

    # --- end --------------------------------------------------------------------------

    def _finish(self, s: JobSnapshot) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._write(render.summary_line(s))
        # A later event (a resumed or re-attached job) starts afresh.
        self._last_draw = -float("inf")
        self._last_logged = None

    def _write(self, line: str) -> None:
        self.file.write(line + "\n")
        self.file.flush()
