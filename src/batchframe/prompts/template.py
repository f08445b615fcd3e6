"""Prompt templates: ``{column}`` placeholders and nothing else.

Templates are data, not code. A placeholder names a column, whole; ``{a.b}`` or ``{a[0]}``
never reach attributes or items (they are only accepted when a column has that exact name),
conversions (``!r``) and format specs (``:.2f``) are refused with a hint, and ``{{``/``}}``
are literal braces. Values are substituted after parsing, so braces inside the data are
plain text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from string import Formatter

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


def parse(source: str, columns: Iterable[object], *, where: str = "template") -> Template:
    """Parse ``source`` and check every placeholder against ``columns``."""
    if not isinstance(source, str):
        raise TemplateError(
            f"The {where} must be a string, got {type(source).__name__}. "
            'Write it like "Summarise: {description}".'
        )
    available = [c for c in columns]
    names = {str(c): c for c in available}
    try:
        parsed = list(Formatter().parse(source))
    except ValueError as exc:  # unbalanced braces
        raise TemplateError(
            f"The {where} {_short(source)} has unbalanced braces ({exc}). "
            "Use {column} for a placeholder and {{ or }} for a literal brace."
        ) from None

    pieces: list[str] = []
    literal = ""
    for text, field, spec, conversion in parsed:
        literal += text
        if field is None:
            continue
        # Formatter splits "{a!r:>3}" into field/conversion/spec; rebuild what the user wrote.
        written = field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
        if field == "":
            raise TemplateError(
                f"The {where} has an empty placeholder {{}}; name a column inside the braces, "
                f"for example {{{_first(available)}}}. Available columns: {_list(available)}."
            )
        if conversion or spec:
            if written in names:  # a column literally named "a:b" is fine
                field = written
            else:
                raise TemplateError(
                    f"The placeholder {{{written}}} in the {where} uses a format spec or "
                    "conversion, which templates do not support. Format the column first, "
                    "e.g. df.assign(price=df['price'].map('{:.2f}'.format))."
                )
        if field not in names:
            hint = ""
            if "." in field or "[" in field:
                hint = " Templates only substitute whole columns; attributes and items are not reachable."
            raise TemplateError(
                f"The {where} refers to {{{field}}}, but the frame has no column {field!r}.{hint} "
                f"Available columns: {_list(available)}."
            )
        pieces.append(literal)
        pieces.append(field)
        literal = ""
    pieces.append(literal)
    return Template(source=source, pieces=tuple(pieces))


def _list(columns: list[object], limit: int = 20) -> str:
    shown = ", ".join(repr(str(c)) for c in columns[:limit])
    more = f" and {len(columns) - limit} more" if len(columns) > limit else ""
    return (shown + more) if columns else "(none)"


def _first(columns: list[object]) -> str:
    return str(columns[0]) if columns else "column"


def _short(source: str, limit: int = 60) -> str:
    return repr(source if len(source) <= limit else source[: limit - 1] + "…")
