"""Prompt templates: ``{column}`` placeholders and nothing else.

Templates are data, not code. The grammar is small and scanned by hand (not by
``str.format``), so nothing in a template can reach attributes, items or format machinery:

* ``{name}`` substitutes the column whose label (as text) is exactly ``name``. The name is
  everything up to the next ``}``, so spaces, dots, colons, brackets and non-ASCII characters
  are all part of it; only ``{`` and ``}`` cannot appear in a placeholder.
* ``{{`` and ``}}`` are a literal ``{`` and ``}``; any other lone ``}`` or unclosed ``{`` is an
  error.
* Values are substituted after parsing, so braces, quotes and newlines inside the data are
  plain text.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import TemplateError


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text interleaved with column names.

    ``pieces`` alternates ``literal, column, literal, column, ..., literal`` (always an odd
    count, literals possibly empty).
    """

    source: str
    pieces: tuple[str, ...]

    @property
    def literals(self) -> tuple[str, ...]:
        return self.pieces[0::2]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.pieces[1::2]

    @property
    def is_constant(self) -> bool:
        return len(self.pieces) == 1

    def render_one(self, values: dict[str, str]) -> str:
        """Render with plain strings (used for samples and tests, not for bulk work)."""
        out = [self.pieces[0]]
        for i in range(1, len(self.pieces), 2):
            out.append(values[self.pieces[i]])
            out.append(self.pieces[i + 1])
        return "".join(out)


_BRACES = " Use {column} for a placeholder and {{ or }} for a literal brace."


def scan(source: str, *, where: str = "template") -> list[tuple[str, str | None]]:
    """Split ``source`` into ``(literal, placeholder-or-None)`` pairs; braces unescaped."""
    out: list[tuple[str, str | None]] = []
    literal: list[str] = []
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char == "{":
            if source.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            end = source.find("}", i + 1)
            inner_open = source.find("{", i + 1)
            if end < 0 or (0 <= inner_open < end):
                raise TemplateError(
                    f"The {where} {_short(source)} has a '{{' at position {i} that is not "
                    "closed by '}'." + _BRACES
                )
            out.append(("".join(literal), source[i + 1 : end]))
            literal = []
            i = end + 1
        elif char == "}":
            if source.startswith("}}", i):
                literal.append("}")
                i += 2
                continue
            raise TemplateError(
                f"The {where} {_short(source)} has a lone '}}' at position {i}." + _BRACES
            )
        else:
            # Copy the run of ordinary characters in one step.
            stop = min((p for p in (source.find("{", i), source.find("}", i)) if p >= 0), default=n)
            literal.append(source[i:stop])
            i = stop
    out.append(("".join(literal), None))
    return out


def parse(source: str, columns: Iterable[object], *, where: str = "template") -> Template:
    """Parse ``source`` and check every placeholder against ``columns``."""
    if not isinstance(source, str):
        raise TemplateError(
            f"The {where} must be a string, got {type(source).__name__}. "
            'Write it like "Summarise: {description}".'
        )
    available = list(columns)
    names = {str(c) for c in available}
    pieces: list[str] = []
    for literal, field in scan(source, where=where):
        pieces.append(literal)
        if field is None:
            continue
        if field not in names:
            raise TemplateError(_unknown(field, available, where))
        pieces.append(field)
    return Template(source=source, pieces=tuple(pieces))


def _unknown(field: str, available: list[object], where: str) -> str:
    if field == "":
        return (
            f"The {where} has an empty placeholder {{}}; name a column inside the braces, "
            f"for example {{{_first(available)}}}. Available columns: {_list(available)}."
        )
    labels = [str(c) for c in available]
    hint = ""
    stripped = field.strip()
    if stripped != field and stripped in labels:
        hint = f" Did you mean {{{stripped}}}? Spaces inside the braces are part of the name."
    elif ":" in field or "!" in field:
        hint = (
            " Format specs and conversions (like {price:.2f} or {name!r}) are not supported; "
            "format the column first, e.g. df.assign(price=df['price'].map('{:.2f}'.format))."
        )
    elif "." in field or "[" in field:
        hint = " Templates only substitute whole columns; attributes and items are not reachable."
    else:
        close = difflib.get_close_matches(field, labels, n=3)
        if close:
            hint = " Did you mean " + " or ".join(f"{{{c}}}" for c in close) + "?"
    return (
        f"The {where} refers to {{{field}}}, but the frame has no column {field!r}.{hint} "
        f"Available columns: {_list(available)}."
    )


def _list(columns: list[object], limit: int = 20) -> str:
    shown = ", ".join(repr(str(c)) for c in columns[:limit])
    more = f" and {len(columns) - limit} more" if len(columns) > limit else ""
    return (shown + more) if columns else "(none)"


def _first(columns: list[object]) -> str:
    return str(columns[0]) if columns else "column"


def _short(source: str, limit: int = 60) -> str:
    return repr(source if len(source) <= limit else source[: limit - 1] + "…")
