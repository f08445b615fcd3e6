"""The small HTML tables of Estimate and CostSummary in a notebook: one look for both."""

from __future__ import annotations

import html
from collections.abc import Iterable

CELL = "padding:2px 10px;text-align:left;vertical-align:top;"
LABEL = CELL + "font-weight:600;white-space:nowrap;"


def _th(label: str) -> str:
    return f'<th style="{LABEL}">{html.escape(label)}</th>'


def header(*labels: str) -> str:
    return "<tr>" + "".join(map(_th, labels)) + "</tr>"


def row(label: str, *values: str) -> str:
    """A labelled row of plain-text values (escaped here)."""
    cells = "".join(f'<td style="{CELL}">{html.escape(v)}</td>' for v in values)
    return f"<tr>{_th(label)}{cells}</tr>"


def labelled(label: str, cell_html: str) -> str:
    """A labelled row whose one cell is HTML already (a listing)."""
    return f'<tr>{_th(label)}<td style="{CELL}">{cell_html}</td></tr>'


def listing(items: Iterable[str], *, ordered: bool = False, code: bool = False) -> str:
    """A compact bulleted (or numbered) list of plain-text items, optionally as code."""
    tag = "ol" if ordered else "ul"
    wrap = (
        (lambda s: f'<code style="white-space:pre-wrap;">{html.escape(s)}</code>')
        if code
        else html.escape
    )
    body = "".join(f"<li>{wrap(item)}</li>" for item in items)
    return f'<{tag} style="margin:0;padding-left:1.2em;">{body}</{tag}>'


def table(caption: str, rows: Iterable[str]) -> str:
    return (
        '<table class="tex2jax_ignore mathjax_ignore"'  # no LaTeX from the dollar signs
        ' style="border-collapse:collapse;font-size:13px;">'
        f'<caption style="text-align:left;font-weight:600;padding:2px 10px;">'
        f"{html.escape(caption)}</caption>{''.join(rows)}</table>"
    )
