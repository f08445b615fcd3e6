"""Progress observers: rendering, the notebook panel, the console bar, observer selection."""

from __future__ import annotations

import html
import io
import sys
import threading
import time
from dataclasses import replace

import pytest

from batchframe.events import Event, EventKind, JobSnapshot
from batchframe.progress import (
    ConsoleProgress,
    JobPanel,
    display_job,
    format_duration,
    format_usd,
    in_notebook,
    interrupted_note,
    make_observer,
    snapshot_html,
    snapshot_text,
)
from batchframe.progress.render import outcome_text

T0 = 1_700_000_000.0

RUNNING = JobSnapshot(
    job_id="bf-1a2b",
    provider="openai",
    model="gpt-4o-mini",
    state="running",
    rows=1_200,
    requests=1_000,
    succeeded=405,
    failed=7,
    pending=588,
    shards_total=3,
    shards_in_flight=2,
    remote_statuses=("in_progress", "in_progress"),
    retries_scheduled=4,
    started_at=T0,
    updated_at=T0 + 192,
    eta_seconds=None,
    estimated_cost=0.0123,
    actual_cost=0.00042,
    savings=0.00042,
)
PLANNED = replace(
    RUNNING,
    state="planned",
    succeeded=0,
    failed=0,
    pending=1_000,
    shards_total=0,
    shards_in_flight=0,
    remote_statuses=(),
    retries_scheduled=0,
    updated_at=T0,
    actual_cost=None,
    savings=None,
)
FINISHED = replace(
    RUNNING,
    state="finished",
    succeeded=993,
    pending=0,
    shards_in_flight=0,
    remote_statuses=(),
    updated_at=T0 + 3_725,
    actual_cost=1.5,
    savings=1.5,
    message="1,200 rows joined: 1,193 answers, 7 errors.",
)
FAILED = replace(
    RUNNING,
    state="failed",
    remote_statuses=("failed",),
    message="Batch batch_42 failed validation: line 3 exceeds max_tokens. Lower max_tokens.",
)
CANCELLED = replace(
    RUNNING,
    state="cancelled",
    failed=595,
    pending=0,
    shards_in_flight=0,
    remote_statuses=(),
    message="Cancelled by the user; 588 rows carry a cancellation error.",
)


def ev(snapshot: JobSnapshot, kind: EventKind = "progress") -> Event:
    return Event(kind=kind, snapshot=snapshot)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeCancel:
    def __init__(self) -> None:
        self.calls = 0

    def cancel(self) -> object:
        self.calls += 1
        return None


# --- render -------------------------------------------------------------------------


def test_format_helpers() -> None:
    assert format_duration(45) == "45s"
    assert format_duration(192) == "3m 12s"
    assert format_duration(3_725) == "1h 02m"
    assert format_duration(93_600) == "1d 2h"
    assert format_duration(None) == "unknown"
    assert format_usd(None) == "unknown"
    assert format_usd(0) == "$0.00"
    assert format_usd(0.0123) == "$0.0123"
    assert format_usd(0.00042) == "$0.00042"
    assert format_usd(1234.5) == "$1,234.50"


def test_text_running_without_eta() -> None:
    text = snapshot_text(RUNNING)
    for part in [
        "bf-1a2b",
        "openai/gpt-4o-mini",
        "running (remote: in_progress ×2)",
        "412 / 1,000 done (405 succeeded, 7 failed, 588 pending)",
        "· 41% · from 1,200 rows",
        "batches: 2 in flight / 3 total",
        "retries: 4",
        "elapsed 3m 12s",
        "ETA unknown",
        "cost so far $0.00042",
        "estimate ≤ $0.0123",
        "saved $0.00042 vs realtime",
    ]:
        assert part in text, part


def test_text_running_with_eta() -> None:
    text = snapshot_text(replace(RUNNING, eta_seconds=270))
    assert "ETA 4m 30s" in text
    assert "ETA unknown" not in text


def test_text_planned_has_unknown_cost_never_zero() -> None:
    text = snapshot_text(PLANNED)
    assert "state: planned" in text
    assert "0 / 1,000 done (0 succeeded, 0 failed, 1,000 pending)" in text
    assert "cost so far unknown" in text
    assert "$0.00" not in text
    assert "saved" not in text


def test_text_nothing_collected_yet_says_so() -> None:
    text = snapshot_text(replace(RUNNING, actual_cost=0.0, savings=0.0))
    assert "cost so far $0.00 (estimate ≤ $0.0123) · counted as results are downloaded" in text
    assert "saved" not in text


def test_text_finished_failed_cancelled() -> None:
    text = snapshot_text(FINISHED)
    assert "state: finished" in text
    assert "1,000 / 1,000 done (993 succeeded, 7 failed, 0 pending)" in text
    assert "elapsed 1h 02m" in text and "ETA" not in text
    assert "cost $1.50 (estimate ≤ $0.0123) · saved $1.50 vs realtime" in text
    assert (
        "Done in 1h 02m: 1,200 rows → 1,000 requests, 993 answered, 7 failed. "
        "Cost $1.50, saved $1.50 against realtime prices." in text
    )
    assert "say why in the error column" in text
    assert FINISHED.message is not None and FINISHED.message in text

    text = snapshot_text(FAILED)
    assert "failed (remote: failed)" in text
    assert "Failed: Batch batch_42 failed validation" in text and "Lower max_tokens." in text
    assert "What to do:" in text and 'batchframe.attach("bf-1a2b").result()' in text

    text = snapshot_text(CANCELLED)
    assert "state: cancelled" in text
    assert "602 failed" not in text and "595 failed" in text
    assert "Cancelled: 405 requests were answered before the cancel" in text
    assert "say 'cancelled' in the error column" in text and "cancellation error" in text


def test_routine_end_message_is_not_repeated() -> None:
    routine = replace(FINISHED, message="993 of 1,000 requests answered, 7 with errors.")
    text = outcome_text(routine)
    assert "993 answered, 7 failed" in text
    assert "with errors" not in text
    clean = replace(FINISHED, rows=1_000, failed=0, succeeded=1_000, message=None)
    assert "error column" not in outcome_text(clean)
    assert outcome_text(RUNNING) == ""
    assert outcome_text(replace(RUNNING, message="resumed after a restart")) == (
        "resumed after a restart"
    )


def test_interrupted_notes_say_what_goes_on() -> None:
    background = interrupted_note("bf-9", background=True)
    assert "keeps running in the background" in background and "Cancel" in background
    assert 'batchframe.attach("bf-9")' in background
    foreground = interrupted_note("bf-9", background=False)
    assert "Nothing is polling" in foreground
    assert 'batchframe.attach("bf-9").cancel()' in foreground


@pytest.mark.parametrize(
    ("snapshot", "colour", "words"),
    [
        (PLANNED, "#616161", ["planned", "0</b> / 1,000 done", "unknown"]),
        (RUNNING, "#1565c0", ["running", "in_progress ×2", "405 succeeded", "ETA unknown"]),
        (FINISHED, "#2e7d32", ["finished", "993 succeeded", "$1.50", "1,193 answers"]),
        (FAILED, "#c62828", ["failed", "line 3 exceeds max_tokens", "What to do"]),
        (CANCELLED, "#a15c00", ["cancelled", "cancellation error"]),
    ],
)
def test_html_each_state(snapshot: JobSnapshot, colour: str, words: list[str]) -> None:
    out = snapshot_html(snapshot)
    assert out.startswith("<div") and out.endswith("</div>")
    assert colour in out
    for word in words:
        assert word in out, word
    assert "<script" not in out and "<link" not in out
    assert out.count("class=") == 1 and 'class="tex2jax_ignore mathjax_ignore"' in out


def test_html_bar_has_a_segment_per_outcome() -> None:
    out = snapshot_html(RUNNING)
    assert 'title="405 succeeded" style="width: 40.500%' in out
    assert 'title="7 failed" style="width: 0.700%' in out
    assert 'title="588 pending" style="width: 58.800%' in out
    done = snapshot_html(replace(FINISHED, failed=0, succeeded=1_000))
    assert "failed" not in done.split("</div>", 3)[1]  # no empty failed segment


def test_html_escapes_hostile_strings() -> None:
    hostile = replace(
        FAILED,
        job_id="<b>id</b>",
        model='gpt"><img src=x onerror=alert(1)>',
        remote_statuses=("<i>odd</i>",),
        message="<script>alert('pwned')</script> & more",
    )
    out = snapshot_html(hostile)
    assert "<script>" not in out
    assert "&lt;script&gt;" in out
    assert "&amp; more" in out
    assert "<img" not in out and "<b>id</b>" not in out and "<i>odd</i>" not in out


# --- JobPanel -----------------------------------------------------------------------


def _classes(panel: JobPanel) -> set[str]:
    return set(panel.widget._dom_classes)


def test_panel_builds_and_updates_from_events() -> None:
    panel = JobPanel(cancel_handle=FakeCancel(), min_interval=0)
    assert "preparing" in panel.body.value
    assert "batchframe-panel" in _classes(panel)
    panel.on_event(ev(RUNNING))
    body = panel.body.value
    assert "bf-1a2b" in body and "gpt-4o-mini" in body
    assert "in_progress ×2" in body
    assert "405 succeeded" in body and "588 pending" in body and "7 failed" in body
    assert "2 in flight / 3 total" in body and "retries: 4" in body
    assert "ETA unknown" in body and "$0.0123" in body and "elapsed 3m 12s" in body
    assert "batchframe-state-running" in _classes(panel)
    assert not panel.cancel_button.disabled
    assert panel.cancel_button.layout.display != "none"
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "405 succeeded" in bundle["text/plain"]


def test_panel_state_class_follows_the_state() -> None:
    panel = JobPanel(PLANNED, FakeCancel(), min_interval=0)
    assert "batchframe-state-planned" in _classes(panel)
    panel.on_event(ev(RUNNING))
    panel.on_event(ev(FINISHED, "finished"))
    states = {c for c in _classes(panel) if c.startswith("batchframe-state-")}
    assert states == {"batchframe-state-finished"}
    assert "#2e7d32" in panel.widget.layout.border_left


def test_panel_throttles_but_always_renders_terminal() -> None:
    clock = FakeClock()
    panel = JobPanel(RUNNING, FakeCancel(), min_interval=1_000, clock=clock)
    assert panel.render_count == 1
    clock.now += 0.1
    panel.on_event(ev(replace(RUNNING, succeeded=500, pending=493)))
    assert panel.render_count == 1 and "405 succeeded" in panel.body.value  # held back
    panel.on_event(ev(replace(RUNNING, succeeded=600, pending=393)))
    assert panel.render_count == 1
    panel.on_event(ev(FAILED, "failed"))  # terminal: renders at once, inside the window
    assert panel.render_count == 2
    assert "#c62828" in panel.widget.layout.border_left
    assert "Lower max_tokens." in panel.body.value and "What to do" in panel.body.value
    assert panel.cancel_button.disabled
    assert panel._timer is None  # the trailing render was cancelled


def test_panel_trailing_render_shows_last_snapshot() -> None:
    clock = FakeClock()
    panel = JobPanel(RUNNING, min_interval=0.01, clock=clock)
    later = replace(RUNNING, succeeded=700, pending=293)
    panel.on_event(ev(later))
    assert "405 succeeded" in panel.body.value
    timer = panel._timer
    assert timer is not None
    timer.join(2)
    assert "700 succeeded" in panel.body.value


def test_panel_cancel_calls_handle_once_then_disables() -> None:
    handle = FakeCancel()
    panel = JobPanel(RUNNING, handle, min_interval=0)
    panel.cancel_button.click()
    panel.cancel_button.click()  # a double click must not cancel twice
    assert panel.cancel_thread is not None
    panel.cancel_thread.join(2)
    assert handle.calls == 1
    assert panel.cancel_button.disabled
    assert panel.cancel_button.description == "Cancelling…"
    panel.on_event(ev(replace(RUNNING, state="cancelling")))
    assert panel.cancel_button.disabled
    assert "Cancelling: the remote batches are being stopped." in panel.body.value
    panel.on_event(ev(CANCELLED, "cancelled"))
    assert panel.cancel_button.disabled
    assert "batchframe-state-cancelled" in _classes(panel)
    assert "Cancelled: 405 requests were answered" in panel.body.value
    panel.cancel_button.click()
    assert handle.calls == 1


def test_panel_failed_cancel_reenables_button() -> None:
    class Refusing:
        def cancel(self) -> object:
            raise RuntimeError("HTTP 500 from the provider")

    panel = JobPanel(RUNNING, Refusing(), min_interval=0)
    panel.cancel_button.click()
    assert panel.cancel_thread is not None
    panel.cancel_thread.join(2)
    assert not panel.cancel_button.disabled
    assert "Cancel failed: HTTP 500" in panel.note.value


def test_panel_note_shows_until_the_job_ends() -> None:
    panel = JobPanel(RUNNING, FakeCancel(), min_interval=0)
    panel.show_note(interrupted_note("bf-1a2b", background=True))
    assert "Stopped waiting" in panel.note.value
    panel.on_event(ev(replace(RUNNING, succeeded=500, pending=493)))
    assert "Stopped waiting" in panel.note.value
    panel.on_event(ev(FINISHED, "finished"))
    assert panel.note.value == ""
    panel.show_note("<b>x</b>")
    assert "&lt;b&gt;" in panel.note.value


def test_panel_finished_shows_summary_and_hides_button() -> None:
    panel = JobPanel(RUNNING, FakeCancel(), min_interval=0)
    panel.on_event(ev(FINISHED, "finished"))
    assert "1,000</b> / 1,000 done" in panel.body.value
    assert "Done in 1h 02m" in panel.body.value and "saved $1.50" in panel.body.value
    assert "1,193 answers" in panel.body.value
    assert panel.cancel_button.disabled and panel.cancel_button.layout.display == "none"


def test_panel_without_handle_hides_cancel() -> None:
    panel = JobPanel(RUNNING)
    assert panel.cancel_button.layout.display == "none"


def test_panel_is_thread_safe() -> None:
    panel = JobPanel(cancel_handle=FakeCancel(), min_interval=0)

    def pump(offset: int) -> None:
        for i in range(50):
            done = offset + i
            panel.on_event(ev(replace(RUNNING, succeeded=done, failed=0, pending=1_000 - done)))

    threads = [threading.Thread(target=pump, args=(k * 100,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    panel.on_event(ev(FINISHED, "finished"))
    assert "993 succeeded" in panel.body.value and "0 pending" in panel.body.value


def test_display_job_shows_a_live_panel_once_per_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython
    import IPython.display

    shown: list[object] = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))

    class Shell:
        execution_count = 7

    shell = Shell()
    monkeypatch.setitem(sys.modules, "IPython", IPython)
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    panel = JobPanel(RUNNING, FakeCancel(), min_interval=0)
    panel.show()
    assert shown == [panel] and panel.shown_in_current_cell()
    display_job(panel, dict)
    assert shown == [panel]  # the cell that started the job already shows it
    shell.execution_count = 8
    assert not panel.shown_in_current_cell()
    display_job(panel, dict)
    assert shown == [panel, panel]  # a later cell gets a new view of the live panel
    display_job(None, lambda: {"text/plain": "snapshot"})
    assert shown[-1] == {"text/plain": "snapshot"}


# --- ConsoleProgress ----------------------------------------------------------------


def test_console_logs_lines_when_not_a_tty() -> None:
    out = io.StringIO()
    clock = FakeClock()
    console = ConsoleProgress(out, clock=clock)
    console.on_event(ev(PLANNED, "started"))
    console.on_event(ev(RUNNING))  # state change: printed at once
    clock.now += 1
    console.on_event(ev(replace(RUNNING, succeeded=500, pending=493)))  # throttled
    clock.now += 11
    console.on_event(ev(replace(RUNNING, succeeded=600, pending=393)))  # interval passed
    console.on_event(ev(FINISHED, "finished"))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 4, lines
    assert "planned" in lines[0]
    assert "412 / 1,000 done" in lines[1] and "in_progress ×2" in lines[1]
    assert "607 / 1,000 done" in lines[2]
    assert lines[-1].startswith(
        "batchframe job bf-1a2b finished: 1,200 rows as 1,000 requests: 993 answered"
    )
    assert "7 failed" in lines[-1] and "cost $1.50" in lines[-1]


def test_console_bar_on_tty_ends_with_summary() -> None:
    out = io.StringIO()
    console = ConsoleProgress(out, bar=True, min_interval=0)
    console.on_event(ev(RUNNING))
    assert "412/1000" in out.getvalue() and "ok=405" in out.getvalue()
    console.on_event(ev(FAILED, "failed"))
    last = out.getvalue().rstrip().splitlines()[-1]
    assert last == (
        "batchframe job bf-1a2b failed: Batch batch_42 failed validation: "
        "line 3 exceeds max_tokens. Lower max_tokens."
    )


def test_console_defaults_to_stderr_at_call_time(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleProgress().on_event(ev(CANCELLED, "cancelled"))
    assert "batchframe job bf-1a2b cancelled" in capsys.readouterr().err


# --- make_observer ------------------------------------------------------------------


def test_make_observer_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATCHFRAME_PROGRESS", raising=False)
    handle = FakeCancel()
    assert make_observer(None, handle) is None
    assert make_observer(False, handle) is None
    assert make_observer("off", handle) is None
    assert not in_notebook()
    assert isinstance(make_observer(True, handle), ConsoleProgress)
    assert isinstance(make_observer("auto", handle), ConsoleProgress)
    assert isinstance(make_observer("console", handle), ConsoleProgress)
    panel = make_observer("panel", handle)
    assert isinstance(panel, JobPanel) and panel.cancel_handle is handle
    custom = ConsoleProgress(io.StringIO())
    assert make_observer(custom, handle) is custom
    with pytest.raises(ValueError, match="progress mode"):
        make_observer("fancy", handle)
    with pytest.raises(TypeError, match="on_event"):
        make_observer(42, handle)  # type: ignore[arg-type]


def test_make_observer_env_overrides_auto_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHFRAME_PROGRESS", "panel")
    assert isinstance(make_observer(True, None), JobPanel)
    assert isinstance(make_observer("console", None), ConsoleProgress)  # explicit wins
    monkeypatch.setenv("BATCHFRAME_PROGRESS", "OFF")
    assert make_observer("auto", None) is None
    monkeypatch.setenv("BATCHFRAME_PROGRESS", "console")
    assert isinstance(make_observer(True, None), ConsoleProgress)
    monkeypatch.setenv("BATCHFRAME_PROGRESS", "sometimes")
    with pytest.raises(ValueError, match="BATCHFRAME_PROGRESS"):
        make_observer(True, None)


def test_auto_picks_panel_in_a_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython

    class ZMQInteractiveShell:  # the test's stand-in for ipykernel's shell
        pass

    class ColabShell(ZMQInteractiveShell):
        pass

    monkeypatch.delenv("BATCHFRAME_PROGRESS", raising=False)
    monkeypatch.setitem(sys.modules, "IPython", IPython)
    monkeypatch.setattr(IPython, "get_ipython", lambda: ColabShell())
    assert in_notebook()
    assert isinstance(make_observer(True, FakeCancel()), JobPanel)
    monkeypatch.setenv("BATCHFRAME_PROGRESS", "console")
    assert isinstance(make_observer(True, None), ConsoleProgress)


# --- jobs() and BatchJob reprs ---------------------------------------------------------------


def test_jobs_frame_reads_well_and_stays_a_dataframe() -> None:
    import pandas as pd

    from batchframe.progress import JobsFrame

    frame = JobsFrame(
        [
            {
                "job_id": "bf-20261123-101500-3fa2c1",
                "created": pd.Timestamp("2026-11-23 10:15:00.123456"),
                "state": "finished",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "rows": 1_200,
                "requests": 1_000,
                "output": "label",
                "estimated_cost": 0.000116,
                "message": "<b>1,000</b> of 1,000 requests answered, 0 with errors. " * 3,
            }
        ]
    )
    text = repr(frame)
    assert "bf-20261123-101500-3fa2c1" in text and "2026-11-23 10:15:00" in text
    assert "≤ $0.00012" in text and ".123456" not in text
    page = frame._repr_html_()
    assert "batchframe jobs (1, newest first)" in page and "tex2jax_ignore" in page
    assert (
        "#2e7d32" in page
        and "1,200 → 1,000" in page
        and "&lt;b&gt;" in page
        and "<b>1,000" not in page
    )
    # The data itself is untouched, and derived frames are plain DataFrames.
    assert frame["estimated_cost"].iloc[0] == 0.000116
    assert type(frame[frame["rows"] > 1]) is pd.DataFrame
    empty = JobsFrame([], columns=["job_id"])
    assert "No stored jobs" in repr(empty) and "No stored jobs" in empty._repr_html_()


def test_batch_job_reprs_after_the_end(emulator, openai_client) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    import batchframe
    from batchframe.emulator import FaultPlan
    from batchframe.progress import JobsFrame

    emulator.set_faults(FaultPlan(row_server_error_rate=0.5))
    df = pd.DataFrame({"text": [f"row {i}" for i in range(12)]})
    job = df.llm.batch(
        "Say {text}",
        model="gpt-4o-mini",
        output="o",
        max_tokens=20,
        client=openai_client,
        wait=False,
        progress=False,
    )
    assert isinstance(job, batchframe.BatchJob)
    job.wait(60)
    snap = job.status(refresh=False)
    assert snap.state == "finished" and snap.succeeded == 12 and snap.pending == 0
    # Read back from the store: the retries and the actual cost, not zeros and "unknown".
    assert snap.retries_scheduled > 0
    assert snap.actual_cost is not None and snap.actual_cost > 0
    assert snap.savings is not None and snap.savings > 0
    # A finished job's clock stopped when it finished.
    time.sleep(1.1)
    assert job.status(refresh=False).elapsed == snap.elapsed
    text = repr(job)
    assert "state: finished" in text and f"retries: {snap.retries_scheduled}" in text
    assert "Done in" in text and "unknown" not in text
    page = job._repr_html_()
    assert job.id in page and "tex2jax_ignore" in page and "Done in" in page
    listed = batchframe.jobs()
    assert isinstance(listed, JobsFrame) and listed["job_id"].tolist() == [job.id]


def test_panel_on_a_failing_job_says_what_failed_and_what_to_do(emulator) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    import batchframe
    from batchframe.emulator import FaultPlan

    # The provider refuses the key when the batch is created: the job cannot go on.
    refuse = {"method": "POST", "path": "/v1/batches", "status": 401, "times": None}
    emulator.set_faults(FaultPlan(http_errors=[refuse]))
    panel = JobPanel(min_interval=0)
    df = pd.DataFrame({"text": ["a", "b", "c"]})
    client = emulator.openai_client(api_key="sk-wrong", max_retries=0)
    with pytest.raises(batchframe.BatchframeError) as caught:
        df.llm.batch("Say {text}", model="gpt-4o-mini", client=client, progress=panel)
    body = panel.body.value
    assert "batchframe-state-failed" in _classes(panel)
    assert "Failed:" in body and "What to do" in body and "run the same cell again" in body
    assert str(caught.value)[:40] in html.unescape(body)
    assert "sk-wrong" not in body  # the key never reaches the panel
    assert panel.cancel_button.layout.display == "none"
