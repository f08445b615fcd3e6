"""Pure functions that turn a :class:`JobSnapshot` into text and HTML.

Shared by the notebook panel, the console bar and the ``BatchJob`` reprs, so every surface
shows the same numbers in the same words. Nothing here keeps state or does I/O.

Honesty rules: an unknown cost is "unknown", never "$0"; an ETA appears only when the runner
supplied one.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter

from batchframe.events import JobSnapshot

# Colours chosen to read on both light and dark JupyterLab themes: saturated mid-tones for
# badges and bar segments (white text on them has >= 4.5:1 contrast), while body text
# inherits the theme's own colour instead of assuming a white page.
STATE_COLOURS: dict[str, str] = {
    "planned": "#616161",
    "running": "#1565c0",
    "finished": "#2e7d32",
    "failed": "#c62828",
    "cancelling": "#a15c00",
    "cancelled": "#a15c00",
}
SUCCEEDED_COLOUR = "#2e7d32"
FAILED_COLOUR = "#c62828"
PENDING_COLOUR = "rgba(128, 128, 128, 0.30)"  # translucent grey works on any background


def format_duration(seconds: float | None) -> str:
    """``45s``, ``3m 12s``, ``2h 05m``, ``1d 3h``; ``unknown`` for None."""
    if seconds is None or math.isnan(seconds):
        return "unknown"
    total = max(0, round(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_usd(amount: float | None) -> str:
    """Dollars with enough precision to be non-zero: ``$12.34``, ``$0.0123``, ``$0.00042``.

    None means the cost is not known (no price, no usage yet) and reads "unknown", because a
    "$0" there would be a false promise about the bill.
    """
    if amount is None or math.isnan(amount):
        return "unknown"
    if amount == 0:
        return "$0.00"
    sign = "-" if amount < 0 else ""
    value = abs(amount)
    if value >= 1:
        return f"{sign}${value:,.2f}"
    if value >= 0.01:
        return f"{sign}${value:.4f}"
    # Two significant digits for fractions of a cent: batch jobs on small models cost that.
    decimals = min(10, -math.floor(math.log10(value)) + 1)
    return f"{sign}${value:.{decimals}f}"


def format_count(n: int) -> str:
    return f"{n:,}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def remote_status_text(s: JobSnapshot) -> str:
    """The providers' own status words, grouped: ``in_progress ×3, finalizing``."""
    if not s.remote_statuses:
        return ""
    counts = Counter(s.remote_statuses)
    return ", ".join(word if n == 1 else f"{word} ×{n}" for word, n in counts.items())


def state_text(s: JobSnapshot) -> str:
    remote = remote_status_text(s)
    return f"{s.state} (remote: {remote})" if remote else s.state


def counts_text(s: JobSnapshot) -> str:
    """``412 / 1,000 done (405 succeeded, 7 failed, 588 pending)``."""
    text = (
        f"{format_count(s.done)} / {format_count(s.requests)} done "
        f"({format_count(s.succeeded)} succeeded, {format_count(s.failed)} failed, "
        f"{format_count(s.pending)} pending)"
    )
    return text


def rows_note(s: JobSnapshot) -> str:
    """Dedup (or rows with input errors) makes requests differ from rows; then say both."""
    return "" if s.rows == s.requests else f" · from {format_count(s.rows)} rows"


def eta_text(s: JobSnapshot) -> str:
    if s.terminal:
        return ""
    return "ETA unknown" if s.eta_seconds is None else f"ETA {format_duration(s.eta_seconds)}"


def shards_text(s: JobSnapshot) -> str:
    """The remote batches (shards): ``batches: 2 in flight / 3 total · retries: 4``."""
    return (
        f"batches: {s.shards_in_flight} in flight / {s.shards_total} total"
        f" · retries: {format_count(s.retries_scheduled)}"
    )


def timing_text(s: JobSnapshot) -> str:
    text = f"elapsed {format_duration(s.elapsed)}"
    if eta := eta_text(s):
        text += f" · {eta}"
    return text


def cost_text(s: JobSnapshot) -> str:
    """``cost so far $0.00042 (estimate ≤ $0.0123) · saved $0.00042 vs realtime``."""
    label = "cost" if s.terminal else "cost so far"
    text = f"{label} {format_usd(s.actual_cost)}"
    if s.estimated_cost is not None:
        text += f" (estimate ≤ {format_usd(s.estimated_cost)})"
    else:
        text += " (estimate unknown)"
    if s.savings:
        text += f" · saved {format_usd(s.savings)} vs realtime"
    elif not s.terminal and not s.actual_cost:
        text += " · counted as results are downloaded"
    return text


# The runner's own end-of-job message restates the counts the summary already shows.
_ROUTINE_END = re.compile(r"^[\d,]+ of [\d,]+ requests answered, [\d,]+ with errors\.$")


def outcome_text(s: JobSnapshot) -> str:
    """What happened and what to do next; empty while the job is running normally.

    Finished: a summary (rows, errors, cost, savings). Failed: the reason and how to resume.
    Cancelled: what was kept and what the other rows say.
    """
    if s.state == "finished":
        rows = _plural(s.rows, "row")
        if s.requests != s.rows:
            rows += f" → {_plural(s.requests, 'request')}"
        text = (
            f"Done in {format_duration(s.elapsed)}: {rows}, {format_count(s.succeeded)} answered, "
            f"{format_count(s.failed)} failed. Cost {format_usd(s.actual_cost)}"
        )
        text += f", saved {format_usd(s.savings)} against realtime prices." if s.savings else "."
        if s.failed or s.requests != s.rows:
            text += " Rows without an answer say why in the error column."
        if s.message and not _ROUTINE_END.match(s.message):
            text += f"\n{s.message}"
        return text
    if s.state == "failed":
        reason = s.message or "no reason was reported"
        return (
            f"Failed: {reason}\n"
            "What to do: fix the cause, then run the same cell again (or "
            f'batchframe.attach("{s.job_id}").result()) to resume. Rows already answered '
            "are kept and are not paid for twice."
        )
    if s.state in ("cancelled", "cancelling"):
        if s.state == "cancelling":
            head = "Cancelling: the remote batches are being stopped."
        else:
            head = (
                f"Cancelled: {format_count(s.succeeded)} requests were answered before the "
                f"cancel; {format_count(s.failed)} ended with an error (the unanswered ones "
                "say 'cancelled' in the error column)."
            )
        tail = " Running the same call again returns these results; fresh=True starts anew."
        text = head + ("" if s.state == "cancelling" else tail)
        if s.message and not _ROUTINE_END.match(s.message):
            text += f"\n{s.message}"
        return text
    return s.message or ""


def interrupted_note(job_id: str, *, background: bool) -> str:
    """What an interrupted wait leaves behind, and what to do about it."""
    again = f'run the same cell again (or batchframe.attach("{job_id}"))'
    if background:
        return (
            "Stopped waiting (interrupted). The job keeps running in the background and this "
            f"panel keeps updating: press Cancel to stop the remote batches, or {again} to "
            "wait for the results."
        )
    return (
        "Stopped waiting (interrupted). Nothing is polling the job now, but its remote "
        f"batches keep running: {again} to pick it up, or "
        f'batchframe.attach("{job_id}").cancel() to stop them.'
    )


def summary_line(s: JobSnapshot) -> str:
    """One line for logs and the end of a console run."""
    head = f"batchframe job {s.job_id} {s.state}"
    if s.state == "failed":
        return f"{head}: {s.message or 'no reason was reported'}"
    rows = f"{format_count(s.rows)} rows"
    if s.requests != s.rows:
        rows += f" as {format_count(s.requests)} requests"
    parts = [
        f"{rows}: {format_count(s.succeeded)} answered",
        f"{format_count(s.failed)} failed",
        f"cost {format_usd(s.actual_cost)}",
    ]
    if s.savings is not None:
        parts.append(f"saved {format_usd(s.savings)}")
    if s.elapsed is not None:
        parts.append(f"in {format_duration(s.elapsed)}")
    line = f"{head}: " + ", ".join(parts)
    return f"{line}. {s.message}" if s.message else line


def snapshot_text(s: JobSnapshot) -> str:
    """A few lines a person reads at a glance in a terminal."""
    lines = [
        f"batchframe job {s.job_id} · {s.provider}/{s.model}",
        f"state: {state_text(s)}",
        f"{counts_text(s)} · {s.fraction:.0%}{rows_note(s)}",
        shards_text(s),
        timing_text(s),
        cost_text(s),
    ]
    if outcome := outcome_text(s):
        lines.append(outcome)
    return "\n".join(lines)


# --- HTML -------------------------------------------------------------------------------
#
# Inline styles only (no classes, no scripts): the same HTML renders in JupyterLab, VS Code,
# nbviewer and GitHub. Sizes are explicit because JupyterLab's widget HTML inherits a tall
# line-height and nowrap that would otherwise spread the panel out.

_MUTED = "opacity: 0.72;"
FONT_CSS = "font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: 13px;"


def badge_html(s: JobSnapshot) -> str:
    colour = STATE_COLOURS.get(s.state, "#616161")
    badge = (
        f'<span style="background: {colour}; color: #fff; border-radius: 3px; '
        f'padding: 1px 7px; font-weight: 600;">{html.escape(s.state)}</span>'
    )
    remote = remote_status_text(s)
    if remote:
        badge += f' <span style="{_MUTED}">remote: {html.escape(remote)}</span>'
    return badge


def bar_html(s: JobSnapshot, width: str = "100%") -> str:
    """A stacked bar: succeeded, failed and pending as distinct segments."""
    total = max(s.requests, 1)
    segments = [
        (s.succeeded, SUCCEEDED_COLOUR, "succeeded"),
        (s.failed, FAILED_COLOUR, "failed"),
        (s.pending, PENDING_COLOUR, "pending"),
    ]
    parts = "".join(
        f'<div title="{n:,} {label}" style="width: {100 * n / total:.3f}%; '
        f'background: {colour};"></div>'
        for n, colour, label in segments
        if n > 0
    )
    return (
        f'<div style="display: flex; width: {width}; height: 12px; border-radius: 3px; '
        f'overflow: hidden; background: {PENDING_COLOUR};">{parts}</div>'
    )


def _dot(colour: str) -> str:
    return (
        f'<span style="display: inline-block; width: 9px; height: 9px; border-radius: 50%; '
        f'background: {colour}; margin-right: 4px;"></span>'
    )


def counts_html(s: JobSnapshot) -> str:
    return (
        f"<b>{s.done:,}</b> / {s.requests:,} done · {s.fraction:.0%} &nbsp; "
        f"{_dot(SUCCEEDED_COLOUR)}{s.succeeded:,} succeeded &nbsp; "
        f"{_dot(FAILED_COLOUR)}{s.failed:,} failed &nbsp; "
        f"{_dot(PENDING_COLOUR)}{s.pending:,} pending"
        f'<span style="{_MUTED}">{html.escape(rows_note(s))}</span>'
    )


def details_html(s: JobSnapshot) -> str:
    rows = [f"{shards_text(s)} · {timing_text(s)}", cost_text(s)]
    return "<br>".join(html.escape(r) for r in rows)


def message_html(s: JobSnapshot) -> str:
    text = outcome_text(s)
    if not text:
        return ""
    if s.state in ("failed", "cancelled", "cancelling", "finished"):
        colour = STATE_COLOURS[s.state]
        weight = "font-weight: 600; " if s.state == "failed" else ""
        return (
            f'<div style="margin-top: 6px; padding: 4px 8px; border-left: 3px solid {colour}; '
            f'{weight}white-space: pre-wrap;">{html.escape(text)}</div>'
        )
    return (
        f'<div style="margin-top: 4px; {_MUTED} white-space: pre-wrap;">{html.escape(text)}</div>'
    )


def header_html(s: JobSnapshot) -> str:
    return (
        f"<b>batchframe</b> job <code>{html.escape(s.job_id)}</code> "
        f'<span style="{_MUTED}">{html.escape(s.provider)} / {html.escape(s.model)}</span> '
        f"&nbsp;{badge_html(s)}"
    )


def panel_body_html(s: JobSnapshot) -> str:
    """The panel's content: header, bar, counts, details and the outcome, without a frame."""
    return (
        f'<div style="{FONT_CSS} line-height: 1.5; white-space: normal; color: inherit;">'
        f"<div>{header_html(s)}</div>"
        f'<div style="margin: 6px 0 4px 0;">{bar_html(s)}</div>'
        f"<div>{counts_html(s)}</div>"
        f'<div style="{_MUTED}">{details_html(s)}</div>'
        f"{message_html(s)}"
        "</div>"
    )


# JupyterLab typesets $...$ in HTML outputs as LaTeX: two prices in one block would turn into
# italic maths. MathJax skips elements with these classes (pandas uses the same escape hatch).
NO_MATH = "tex2jax_ignore mathjax_ignore"


def snapshot_html(s: JobSnapshot) -> str:
    """The snapshot as one compact, self-contained HTML block (inline styles, no JS)."""
    colour = STATE_COLOURS.get(s.state, "#616161")
    return (
        f'<div class="{NO_MATH}" '
        f'style="border-left: 4px solid {colour}; padding: 4px 10px; max-width: 720px;">'
        f"{panel_body_html(s)}</div>"
    )
