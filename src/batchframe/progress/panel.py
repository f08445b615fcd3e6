"""The notebook panel: an ipywidgets view of a running job, with a Cancel button.

Built from stock widgets only (no custom JS), in the spirit of tqdm.notebook. The runner
calls :meth:`JobPanel.on_event` from its polling thread while the cell is free; ipykernel
accepts trait updates from any thread, so the panel only needs a lock to keep its own
bookkeeping consistent and a throttle so a burst of events does not flood the frontend.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from batchframe.events import CancelHandle, Event, JobSnapshot
from batchframe.progress import render

_BAR_STYLES = {
    "planned": "info",
    "running": "info",
    "finished": "success",
    "failed": "danger",
    "cancelling": "warning",
    "cancelled": "warning",
}


class JobPanel:
    """A live panel for one job; an :class:`~batchframe.events.Observer`.

    ``min_interval`` bounds re-renders (seconds) for non-terminal events; a throttled
    snapshot is rendered by a trailing timer, so the last state always shows up.
    ``clock`` is injectable so tests can drive the throttle without sleeping.
    """

    def __init__(
        self,
        snapshot: JobSnapshot | None = None,
        cancel_handle: CancelHandle | None = None,
        *,
        min_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cancel_handle = cancel_handle
        self.min_interval = min_interval
        self._clock = clock
        # Re-entrant: a widget callback fired during a render may come back into the panel.
        self._lock = threading.RLock()
        self._latest: JobSnapshot | None = snapshot
        self._rendered: JobSnapshot | None = None
        self._last_render = -float("inf")
        self._timer: threading.Timer | None = None
        self._cancel_requested = False
        self.cancel_thread: threading.Thread | None = None
        self.render_count = 0

        self.header = widgets.HTML()
        self.badge = widgets.HTML()
        self.progress = widgets.IntProgress(
            value=0, min=0, max=1, bar_style="info", layout=widgets.Layout(width="320px")
        )
        self.counts = widgets.HTML()
        self.details = widgets.HTML()
        self.message = widgets.HTML()
        self.cancel_button = widgets.Button(
            description="Cancel",
            icon="stop",
            button_style="warning",
            tooltip="Cancel the remote batches; finished rows are kept",
            layout=widgets.Layout(width="auto"),
        )
        self.cancel_button.on_click(self._on_cancel_click)
        if cancel_handle is None:
            self.cancel_button.layout.display = "none"
        self.widget = widgets.VBox(
            [
                self.header,
                self.badge,
                widgets.HBox([self.progress, self.cancel_button]),
                self.counts,
                self.details,
                self.message,
            ],
            layout=widgets.Layout(border="1px solid rgba(128, 128, 128, 0.5)", padding="4px 10px"),
        )
        self.widget.add_class("batchframe-panel")
        self._state_class: str | None = None
        if snapshot is not None:
            self._render(snapshot)
        else:
            self.header.value = "<b>batchframe</b> waiting for the job to start…"

    # --- Observer ---------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        snapshot = event.snapshot
        with self._lock:
            self._latest = snapshot
            now = self._clock()
            if snapshot.terminal or now - self._last_render >= self.min_interval:
                self._cancel_timer()
                self._render(snapshot)
            elif self._timer is None:
                # Trailing render: without it a throttled snapshot would stay hidden until
                # the next poll, which may be minutes away.
                delay = self.min_interval - (now - self._last_render)
                self._timer = threading.Timer(max(delay, 0.0), self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Render the latest snapshot now if the throttle held it back."""
        with self._lock:
            self._timer = None
            if self._latest is not None and self._latest is not self._rendered:
                self._render(self._latest)

    @property
    def snapshot(self) -> JobSnapshot | None:
        """The latest snapshot received (rendered or not)."""
        return self._latest

    # --- display ----------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = self.widget._repr_mimebundle_(**kwargs) or {}
        # Plain-text frontends (and logs of executed notebooks) get the readable summary.
        latest = self._latest
        bundle["text/plain"] = (
            render.snapshot_text(latest) if latest else "batchframe: waiting for the job to start"
        )
        return bundle

    def display(self) -> None:
        from IPython.display import display

        display(self)

    def show(self) -> JobPanel:
        """Display the panel in the current cell's output and return it."""
        self.display()
        return self

    # --- internals --------------------------------------------------------------------

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _render(self, s: JobSnapshot) -> None:
        self._rendered = s
        self._last_render = self._clock()
        self.render_count += 1

        colour = render.STATE_COLOURS.get(s.state, "#616161")
        self.header.value = render.header_html(s)
        self.badge.value = render.badge_html(s)
        # Assign max before value: IntProgress clamps value into [min, max].
        self.progress.max = max(s.requests, 1)
        # A job with no requests (every row had an input error) is complete once terminal.
        self.progress.value = s.done if s.requests else int(s.terminal)
        self.progress.bar_style = _BAR_STYLES.get(s.state, "info")
        self.counts.value = render.counts_html(s)
        self.details.value = f'<span style="opacity: 0.75;">{render.details_html(s)}</span>'
        self.message.value = render.message_html(s)
        width = "2px" if s.state in ("failed", "cancelled", "cancelling") else "1px"
        border_colour = colour if s.state != "planned" else "rgba(128, 128, 128, 0.5)"
        self.widget.layout.border = f"{width} solid {border_colour}"

        state_class = f"batchframe-state-{s.state}"
        if state_class != self._state_class:
            if self._state_class is not None:
                self.widget.remove_class(self._state_class)
            self.widget.add_class(state_class)
            self._state_class = state_class

        button = self.cancel_button
        if s.terminal:
            button.disabled = True
            button.layout.display = "none"
        elif s.state == "cancelling" or self._cancel_requested:
            button.disabled = True
            button.description = "Cancelling…"

    def _on_cancel_click(self, _button: widgets.Button) -> None:
        with self._lock:
            terminal = self._latest is not None and self._latest.terminal
            if self._cancel_requested or terminal or self.cancel_handle is None:
                return
            self._cancel_requested = True
            self.cancel_button.disabled = True
            self.cancel_button.description = "Cancelling…"
        # cancel() performs HTTP calls; keep them off the kernel's main thread so the
        # notebook stays responsive, and outside the lock so events can still render.
        self.cancel_thread = threading.Thread(
            target=self._cancel, name="batchframe-cancel", daemon=True
        )
        self.cancel_thread.start()

    def _cancel(self) -> None:
        assert self.cancel_handle is not None
        try:
            self.cancel_handle.cancel()
        except Exception as exc:  # a failed cancel must be visible, not a lost traceback
            with self._lock:
                self._cancel_requested = False
                if self._latest is None or not self._latest.terminal:
                    self.cancel_button.disabled = False
                    self.cancel_button.description = "Cancel"
                self.message.value = (
                    '<div style="color: #c62828;">Cancel failed: '
                    f"{html.escape(str(exc))}. The job is still running; "
                    "try again or call job.cancel().</div>"
                )
