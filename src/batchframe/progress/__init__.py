"""Progress observers: a live ipywidgets panel in notebooks, a tqdm bar elsewhere.

``make_observer`` picks one. The widget and tqdm modules load lazily, on first use of
``JobPanel`` or ``ConsoleProgress``: importing ipywidgets costs about 0.3 s, which a cron job
or the CLI should not pay just to import batchframe.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from batchframe.events import CancelHandle, Observer
from batchframe.progress.jobs_table import JobsFrame
from batchframe.progress.render import (
    format_duration,
    format_usd,
    interrupted_note,
    snapshot_html,
    snapshot_text,
)

if TYPE_CHECKING:
    from batchframe.progress.console import ConsoleProgress
    from batchframe.progress.panel import JobPanel

__all__ = [
    "ConsoleProgress",
    "JobPanel",
    "JobsFrame",
    "display_job",
    "format_duration",
    "format_usd",
    "in_notebook",
    "interrupted_note",
    "make_observer",
    "snapshot_html",
    "snapshot_text",
]

ENV_VAR = "BATCHFRAME_PROGRESS"
_MODES = ("auto", "panel", "console", "off")


def __getattr__(name: str) -> Any:
    if name == "JobPanel":
        from batchframe.progress.panel import JobPanel

        return JobPanel
    if name == "ConsoleProgress":
        from batchframe.progress.console import ConsoleProgress

        return ConsoleProgress
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def in_notebook() -> bool:
    """True inside a Jupyter kernel (a ZMQInteractiveShell) where ipywidgets can load.

    Same test as tqdm.autonotebook. A terminal IPython session is not a notebook: widgets
    would print as ``VBox(...)`` there.
    """
    ipython = sys.modules.get("IPython")  # not imported means not running under IPython
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    if shell is None:
        return False
    # Match by name along the MRO so subclasses (Colab's shell, for one) count too.
    if not any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__):
        return False
    return importlib.util.find_spec("ipywidgets") is not None


def _mode_from(progress: bool | str) -> str:
    if progress is True:
        progress = "auto"
    mode = str(progress).strip().lower()
    if mode not in _MODES:
        raise ValueError(
            f"progress={progress!r} is not a progress mode; use True, False, None, "
            f"one of {', '.join(map(repr, _MODES))}, or an object with an on_event method."
        )
    if mode == "auto":
        env = os.environ.get(ENV_VAR, "").strip().lower()
        if env and env not in _MODES:
            raise ValueError(
                f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not a progress mode; "
                f"set it to one of {', '.join(_MODES)} or unset it."
            )
        mode = env or "auto"
    if mode == "auto":
        mode = "panel" if in_notebook() else "console"
    return mode


def make_observer(
    progress: bool | str | Observer | None,
    cancel_handle: CancelHandle | None = None,
) -> Observer | None:
    """The observer for a ``progress=`` argument, or None when progress is off.

    False/None/"off" -> None; True/"auto" -> the ``BATCHFRAME_PROGRESS`` environment variable
    if set, else a JobPanel in a notebook and a ConsoleProgress elsewhere; "panel" and
    "console" force one; an object with ``on_event`` is returned as is.

    The caller displays a returned JobPanel (``panel.show()``) where it wants it to appear.
    """
    if progress is None or progress is False:
        return None
    if not isinstance(progress, bool | str):
        if callable(getattr(progress, "on_event", None)):
            return progress
        raise TypeError(
            f"progress= takes True, False, None, 'auto', 'panel', 'console', 'off' or an "
            f"object with an on_event(event) method, not {type(progress).__name__}."
        )
    mode = _mode_from(progress)
    if mode == "off":
        return None
    if mode == "panel":
        from batchframe.progress.panel import JobPanel

        return JobPanel(cancel_handle=cancel_handle)
    from batchframe.progress.console import ConsoleProgress

    return ConsoleProgress()


def display_job(observer: object, static_bundle: Callable[[], dict[str, str]]) -> None:
    """Show a job handle in IPython: its live panel if it has one, else a static snapshot.

    A panel already shown by the running cell is not shown twice (``job = attach(id)`` and a
    bare ``attach(id)`` both end with one panel); in a later cell a new view of the same live
    panel appears.
    """
    from IPython.display import display

    shown = getattr(observer, "shown_in_current_cell", None)
    show = getattr(observer, "display", None)
    if callable(shown) and callable(show):
        if not shown():
            show()
        return
    display(static_bundle(), raw=True)
