"""``batchframe.jobs()``: a plain DataFrame of stored jobs that also reads well.

``JobsFrame`` changes nothing but the reprs: the data stays the raw values (floats, timestamps)
and every operation on it (filtering, sorting, selecting) returns an ordinary DataFrame.
"""

from __future__ import annotations

import html
import math
import shutil
from typing import Any

import pandas as pd

from batchframe.progress.render import NO_MATH, STATE_COLOURS, format_usd

_HTML_ROWS = 50  # the rich view lists the newest jobs; the frame itself holds them all
_MESSAGE_CHARS = 60


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    return str(value)


def _when(value: Any) -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return ""
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cost(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    return "≤ " + format_usd(float(value))


class JobsFrame(pd.DataFrame):
    """The frame ``batchframe.jobs()`` returns: newest first, one row per stored job."""

    @property
    def _constructor(self) -> type[pd.DataFrame]:  # derived frames are plain DataFrames
        return pd.DataFrame

    def _display_frame(self, message_chars: int) -> pd.DataFrame:
        shown = pd.DataFrame(self).copy()
        if "created" in shown:
            shown["created"] = [_when(v) for v in shown["created"]]
        if "estimated_cost" in shown:
            shown["estimated_cost"] = [_cost(v) for v in shown["estimated_cost"]]
        if "message" in shown:
            shown["message"] = [_short(_text(v), message_chars) for v in shown["message"]]
        return shown

    def __repr__(self) -> str:
        if len(self) == 0:
            return "No stored jobs yet (batchframe.jobs() is empty)."
        width = shutil.get_terminal_size((120, 24)).columns
        with pd.option_context(
            "display.width", width, "display.max_columns", None, "display.max_colwidth", 60
        ):
            return self._display_frame(48).to_string(index=False)

    def _repr_html_(self) -> str:
        if len(self) == 0:
            return "<p><i>No stored jobs yet.</i> <code>batchframe.jobs()</code> is empty.</p>"
        cell = "padding: 3px 10px; text-align: left; vertical-align: top;"
        num = "padding: 3px 10px; text-align: right; vertical-align: top;"
        heads = [
            ("job", cell),
            ("created", cell),
            ("state", cell),
            ("model", cell),
            ("rows → requests", num),
            ("output", cell),
            ("est. cost", num),
            ("message", cell),
        ]
        header = "".join(f'<th style="{style}">{html.escape(h)}</th>' for h, style in heads)
        body = []
        records = pd.DataFrame(self.head(_HTML_ROWS)).to_dict("records")
        for r in records:
            state = _text(r.get("state"))
            colour = STATE_COLOURS.get(state, "#616161")
            badge = (
                f'<span style="background: {colour}; color: #fff; border-radius: 3px; '
                f'padding: 0 6px; font-weight: 600;">{html.escape(state)}</span>'
            )
            message = _text(r.get("message"))
            model = f"{_text(r.get('provider'))} / {_text(r.get('model'))}"
            cells = [
                (
                    f'<code style="white-space: nowrap;">{html.escape(_text(r.get("job_id")))}'
                    "</code>",
                    cell + " white-space: nowrap;",
                ),
                (html.escape(_when(r.get("created"))), cell + " white-space: nowrap;"),
                (badge, cell),
                (html.escape(model), cell),
                (f"{int(r.get('rows') or 0):,} → {int(r.get('requests') or 0):,}", num),
                (html.escape(_text(r.get("output"))), cell),
                (html.escape(_cost(r.get("estimated_cost"))), num),
                (
                    f'<span title="{html.escape(message)}">'
                    f"{html.escape(_short(message, _MESSAGE_CHARS))}</span>",
                    cell + " min-width: 16em;",
                ),
            ]
            body.append("<tr>" + "".join(f'<td style="{s}">{v}</td>' for v, s in cells) + "</tr>")
        more = ""
        if len(self) > _HTML_ROWS:
            more = (
                f'<p style="opacity: 0.72;">… and {len(self) - _HTML_ROWS:,} older jobs '
                "(this is a DataFrame: filter or slice it to see them).</p>"
            )
        return (
            f'<div class="{NO_MATH}" style="max-width: 100%; overflow-x: auto;">'
            '<table style="border-collapse: collapse; font-size: 13px;">'
            f'<caption style="text-align: left; font-weight: 600; padding: 2px 10px;">'
            f"batchframe jobs ({len(self):,}, newest first)</caption>"
            f"<thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"{more}</div>"
        )
