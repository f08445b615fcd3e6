"""Vectorised rendering: a template over a frame, as pyarrow string arrays.

Each referenced column is turned into text once (one conversion per column, not per row), then
``binary_join_element_wise`` interleaves literals and columns in C++.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from .template import Template

OnMissing = Literal["row_error", "empty", "raise"]
ON_MISSING_CHOICES: tuple[str, ...] = ("row_error", "empty", "raise")


@dataclass(frozen=True)
class Rendered:
    """Rendered message parts for every row, plus which rows cannot be sent and why."""

    parts: tuple[pa.Array, ...]  # one large_string array per template part, len == rows
    input_errors: pa.Array  # large_string, null where the row is fine


def column_text(series: pd.Series) -> tuple[pa.Array, np.ndarray]:
    """Text of every value in ``series`` (as a large_string array) and its missing mask."""
    missing = series.isna().to_numpy(dtype=bool, na_value=True)
    dtype = series.dtype
    if pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        finite = values[~missing]
        # An int column with a gap becomes float; render 3.0 as "3", as the user wrote it.
        # Only below 2**53, where every whole float is exactly an integer.
        if (
            finite.size
            and np.all(np.isfinite(finite))
            and np.all(np.abs(finite) < 2.0**53)
            and np.all(np.mod(finite, 1) == 0)
        ):
            text = pd.Series(values).astype("Int64").astype("string")
        else:
            text = series.astype("string")
    elif isinstance(dtype, pd.CategoricalDtype):
        text = series.astype("object").astype("string")
    elif pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        text = series
    elif pd.api.types.is_object_dtype(dtype) and pd.api.types.infer_dtype(series) == "string":
        text = series  # plain str objects: pyarrow converts them without a Python loop
    elif pd.api.types.is_object_dtype(dtype):
        # Mixed objects (lists, dicts, Decimals...): str() is what a person expects to see.
        text = series.map(lambda v: v if isinstance(v, str) else str(v), na_action="ignore")
    else:
        text = series.astype("string")
    arr = pa.array(text, type=pa.large_string(), from_pandas=True)
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    return arr, missing


def render(
    frame: pd.DataFrame,
    templates: tuple[Template, ...],
    *,
    labels: Mapping[str, object],
    on_missing: OnMissing,
) -> Rendered:
    """Render each template over ``frame``. ``labels`` maps placeholder text to column labels."""
    n = len(frame)
    needed = {name for t in templates for name in t.columns}
    texts: dict[str, pa.Array] = {}
    missing_by_column: dict[str, np.ndarray] = {}
    for name in sorted(needed):
        series = frame[labels[name]]
        if isinstance(series, pd.DataFrame):
            raise InputError(
                f"Column {name!r} appears more than once in the frame; rename the duplicates "
                "so the placeholder is unambiguous."
            )
        text, missing_by_column[name] = column_text(series)
        texts[name] = text.cast(pa.large_string())  # one string width for the join kernel

    errors = _missing_errors(frame, missing_by_column, on_missing, n)
    parts = []
    for template in templates:
        if template.is_constant:
            parts.append(pa.repeat(pa.scalar(template.pieces[0], pa.large_string()), n))
            continue
        args: list[object] = []
        for i, piece in enumerate(template.pieces):
            if i % 2:
                args.append(texts[piece])
            elif piece:
                args.append(pa.scalar(piece, pa.large_string()))
        if len(args) == 1:
            parts.append(args[0])
        else:
            parts.append(pc.binary_join_element_wise(*args, pa.scalar("", pa.large_string())))
    return Rendered(parts=tuple(_as_array(p) for p in parts), input_errors=errors)


def _missing_errors(
    frame: pd.DataFrame,
    missing_by_column: dict[str, np.ndarray],
    on_missing: OnMissing,
    n: int,
) -> pa.Array:
    any_missing = np.zeros(n, dtype=bool)
    for mask in missing_by_column.values():
        any_missing |= mask
    if on_missing == "empty" or not any_missing.any():
        return pa.nulls(n, pa.large_string())
    if on_missing == "raise":
        for name, mask in missing_by_column.items():
            if mask.any():
                pos = int(np.argmax(mask))
                raise InputError(
                    f"Column {name!r} has {int(mask.sum()):,} missing value(s), the first at "
                    f"row {frame.index[pos]!r}. Fill them, drop those rows, or pass "
                    "on_missing='row_error' (error those rows) or 'empty' (render as '')."
                )
    # One message per combination of missing columns, built column-wise, not row by row.
    names = pd.Series(np.full(n, "", dtype=object))
    count = np.zeros(n, dtype=np.int64)
    for name, mask in missing_by_column.items():
        if mask.any():
            sep = np.where(count[mask] > 0, ", ", "")
            names[mask] = names[mask] + sep + repr(name)
            count += mask
    prefix = np.where(count > 1, "missing values in columns ", "missing value in column ")
    full = pd.Series(prefix) + names + "; no request was sent (on_missing='row_error')"
    return pa.array(full.where(any_missing), type=pa.large_string(), from_pandas=True)


def _as_array(values: object) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    assert isinstance(values, pa.Array)
    return values
