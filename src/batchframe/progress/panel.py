"""The notebook panel: an ipywidgets view of a running job, with a Cancel button.

Built from stock widgets only (no custom JS), in the spirit of tqdm.notebook: one HTML widget
for the body (header, stacked bar, counts, details, outcome), a Cancel button and a note line.
The runner calls :meth:`JobPanel.on_event` from its driving thread, both while the cell is
free (``wait=False``) and while a blocking call waits; ipykernel accepts trait updates from any
thread, so the panel only needs a lock to keep its own bookkeeping consistent and a throttle
so a burst of events does not flood the frontend.

The Cancel button works whenever the kernel is free to handle the click: after a
``wait=False`` call, or after a blocking wait was interrupted (in a notebook the job is driven
from a background thread, so an interrupt stops the wait and not the job). A click during a
blocking wait is queued by the kernel and handled once the cell ends.
"""

from __future__ import annotations

import html
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from batchframe.events import CancelHandle, Event, JobSnapshot
from batchframe.progress import render

_NEUTRAL_BORDER = "rgba(128, 128, 128, 0.5)"


def _execution_count() -> int | None:
    """The running cell's number in an IPython kernel (None outside one)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    count = getattr(shell, "execution_count", None)
    return count if isinstance(count, int) else None


class JobPanel:
    """A live panel for one job; an :class:`~batchframe.events.Observer`.

    ``min_interval`` bounds re-renders (seconds) for non-terminal events; a throttled
    snapshot is rendered by a trailing timer, so the last state always shows up.
    ``clock`` is injectable so tests can drive the throttle without sleeping.

    The DOM carries stable classes for tests and user CSS: ``batchframe-panel`` on the box
    and ``batchframe-state-<state>`` for the state last rendered.
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
        self._state_class: str | None = None
        self._shown_at: int | None = None
        self.cancel_thread: threading.Thread | None = None
        self.render_count = 0

        self.body = widgets.HTML(layout=widgets.Layout(flex="1 1 auto", width="auto"))
        self.cancel_button = widgets.Button(
            description="Cancel",
            icon="stop",
            button_style="warning",
            tooltip=(
                "Cancel the remote batches: answered rows are kept, the others get a "
                "'cancelled' error. If the cell is busy waiting, interrupt the kernel first "
                "(the job keeps running in the background)."
            ),
            layout=widgets.Layout(width="auto", flex="0 0 auto", margin="2px 0 0 12px"),
        )
        self.cancel_button.add_class("batchframe-cancel")
        self.cancel_button.on_click(self._on_cancel_click)
        if cancel_handle is None:
            self.cancel_button.layout.display = "none"
        self.note = widgets.HTML()
        self.widget = widgets.VBox(
            [
                widgets.HBox(
                    [self.body, self.cancel_button],
                    layout=widgets.Layout(align_items="flex-start", width="100%"),
                ),
                self.note,
            ],
            layout=widgets.Layout(
                border=f"1px solid {_NEUTRAL_BORDER}",
                padding="6px 12px",
                margin="4px 0",
                max_width="820px",
            ),
        )
        self.widget.add_class("batchframe-panel")
        for part in (self.body, self.note):  # dollar amounts are not LaTeX
            part.add_class("tex2jax_ignore")
            part.add_class("mathjax_ignore")
        if snapshot is not None:
            self._render(snapshot)
        else:
            self.body.value = (
                f'<div style="{render.FONT_CSS} line-height: 1.5;"><b>batchframe</b> '
                "preparing the job…</div>"
            )

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
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:  # what display() prints outside a notebook
        latest = self._latest
        return (
            render.snapshot_text(latest) if latest else "batchframe: waiting for the job to start"
        )

    def display(self) -> None:
        from IPython.display import display

        display(self)
        self._shown_at = _execution_count()

    def shown_in_current_cell(self) -> bool:
        """True when this panel was displayed by the cell that is running now."""
        return self._shown_at is not None and self._shown_at == _execution_count()

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

        self.body.value = render.panel_body_html(s)
        colour = render.STATE_COLOURS.get(s.state, "#616161")
        border = _NEUTRAL_BORDER if s.state == "planned" else colour
        self.widget.layout.border = f"1px solid {border}"
        self.widget.layout.border_left = f"5px solid {border}"

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
            self.note.value = ""  # an interrupt or cancel note is stale once the job has ended
        elif s.state == "cancelling" or self._cancel_requested:
            button.disabled = True
            button.description = "Cancelling…"

    def show_note(self, text: str, *, error: bool = False) -> None:
        """Show a line under the panel (an interrupted wait, a failed cancel) until the end."""
        with self._lock:
            if not text:
                self.note.value = ""
                return
            colour = f"color: {render.FAILED_COLOUR}; " if error else ""
            self.note.value = (
                f'<div style="{render.FONT_CSS} {colour}line-height: 1.5; white-space: pre-wrap; '
                f'margin-top: 4px;">{html.escape(text)}</div>'
            )

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
                self.show_note(
                    f"Cancel failed: {exc}. The job is still running; try again or call "
                    "job.cancel().",
                    error=True,
                )
