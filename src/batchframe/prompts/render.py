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
            whole = np.where(missing, 0, values).astype(np.int64)
            return _distinct_text(whole, missing), missing
        if dtype == np.float64:  # float32 prints its own (shorter) way
            return _distinct_text(values, missing), missing
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
    elif isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return _distinct_text(series.to_numpy(), missing), missing
    else:
        text = series.astype("string")
    arr = pa.array(text, type=pa.large_string(), from_pandas=True)
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    return arr, missing


def _distinct_text(values: np.ndarray, missing: np.ndarray) -> pa.Array:
    """``astype("string")`` of numbers, formatted once per distinct value (prices, counts and
    ids repeat), with "" where ``missing``. Floats are told apart by their bits, so 0.0 and
    -0.0 keep their own text."""
    keys = values.view(np.int64) if values.dtype == np.float64 else values
    codes, uniques = pd.factorize(keys)
    if values.dtype == np.float64:
        uniques = np.asarray(uniques).view(np.float64)
    texts = pa.array(pd.Series(uniques).astype("string"), type=pa.large_string(), from_pandas=True)
    result: pa.Array = pc.fill_null(texts.take(pa.array(codes, mask=missing)), "")
    return result


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
        texts[name], missing_by_column[name] = column_text(series)

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
            parts.append(_join(args, n))
    return Rendered(parts=tuple(_as_array(p) for p in parts), input_errors=errors)


_JOIN_ROWS = 65_536


def _join(args: list[object], n: int) -> pa.Array:
    """``binary_join_element_wise`` over ``args`` as one array, built a slice of rows at a time.

    The result is written straight into one buffer of its final size, so the largest part
    (the prompt) exists once, not as chunks plus their concatenation.
    """
    empty = pa.scalar("", pa.large_string())
    arrays = [a for a in args if isinstance(a, pa.Array | pa.ChunkedArray)]
    if n <= _JOIN_ROWS or any(a.null_count for a in arrays):
        return _as_array(pc.binary_join_element_wise(*args, empty))
    # Every row's length is known up front: the literals plus each value's bytes.
    literal = sum(len(a.as_py().encode()) for a in args if isinstance(a, pa.Scalar))
    total = literal * n + sum(int(pc.sum(pc.binary_length(a)).as_py() or 0) for a in arrays)
    data = np.empty(total, dtype=np.uint8)
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    at = 0
    for start in range(0, n, _JOIN_ROWS):
        size = min(_JOIN_ROWS, n - start)
        piece = pc.binary_join_element_wise(
            *[
                a.slice(start, size) if isinstance(a, pa.Array | pa.ChunkedArray) else a
                for a in args
            ],
            empty,
        )
        chunks = piece.chunks if isinstance(piece, pa.ChunkedArray) else [piece]
        row = start
        for chunk in chunks:
            if not len(chunk):
                continue
            bounds = np.frombuffer(chunk.buffers()[1], dtype=np.int64)
            bounds = bounds[chunk.offset : chunk.offset + len(chunk) + 1]
            lo, hi = int(bounds[0]), int(bounds[-1])
            if hi > lo:
                data[at : at + hi - lo] = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)[lo:hi]
            offsets[row + 1 : row + len(chunk) + 1] = bounds[1:] - lo + at
            at += hi - lo
            row += len(chunk)
    assert at == total
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def refuse_missing(
    frame: pd.DataFrame, templates: tuple[Template, ...], labels: Mapping[str, object]
) -> None:
    """on_missing='raise': name the first referenced column with a missing value, counted over
    the whole frame (a chunked render sees one chunk at a time)."""
    masks = {}
    for name in sorted({name for t in templates for name in t.columns}):
        series = frame[labels[name]]
        if isinstance(series, pd.Series):  # a duplicated label is refused by render()
            masks[name] = series.isna().to_numpy(dtype=bool, na_value=True)
    _raise_missing(frame.index, masks)


def _raise_missing(index: pd.Index, missing_by_column: Mapping[str, np.ndarray]) -> None:
    for name, mask in missing_by_column.items():
        if mask.any():
            pos = int(np.argmax(mask))
            raise InputError(
                f"Column {name!r} has {int(mask.sum()):,} missing value(s), the first at "
                f"row {index[pos]!r}. Fill them, drop those rows, or pass "
                "on_missing='row_error' (error those rows) or 'empty' (render as '')."
            )


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
        _raise_missing(frame.index, missing_by_column)
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
