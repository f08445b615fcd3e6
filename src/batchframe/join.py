"""Results and errors -> columns, by key, onto the original index and order.

Work happens once per distinct request (key level), then one ``take`` fans the values out to
rows, so a million rows cost two vectorised gathers. Every row ends with exactly one of
``output`` and ``{output}_error`` filled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .outcomes import PENDING, Settled
from .records import FAILED, OK, RETRY, ResponseFormat
from .structured import parse_answers

# finish/stop reasons that mean the answer was cut off before the model finished.
TRUNCATED = {"length", "max_tokens", "max_output_tokens", "model_context_window_exceeded"}
# What the Anthropic decoder records as a refusal's text when the model said nothing.
REFUSAL_PLACEHOLDER = "the model declined to answer"


@dataclass(frozen=True)
class Columns:
    """Output names for a job."""

    output: str

    @property
    def error(self) -> str:
        return f"{self.output}_error"

    @property
    def raw(self) -> str:
        return f"{self.output}_raw"


def key_level(
    settled: Settled,
    n_requests: int,
    *,
    response_format: ResponseFormat | None,
    columns: Columns,
    unfinished: str | None,
    prefix: str | None = None,
    model: object = None,
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Per-key values (one or more columns), error text and raw text for unusable answers.

    Masks are numpy arrays and texts Arrow arrays; each kind of error message is built only
    for the keys it concerns and all are gathered into one column at the end.
    """
    index = pd.RangeIndex(n_requests, name="key")

    def column(name: str, kind: pa.DataType) -> pa.Array:
        values = settled.by_key(name)
        return pa.nulls(n_requests, kind) if values is None else values.cast(kind)

    fate = column("fate", pa.string())
    text = column("text", pa.large_string())
    finish = column("finish_reason", pa.large_string())
    refusal = column("refusal", pa.large_string())
    code = pc.fill_null(column("error_code", pa.large_string()), "error")
    message = pc.fill_null(column("error_message", pa.large_string()), "")
    attempts = column("attempt", pa.int64())

    ok = _is(fate, OK)
    failed = _is(fate, FAILED)
    gave_up = _is(fate, RETRY) & (settled.status != PENDING)
    refused = ok & _valid(refusal)
    # The refusal's own words, unless the provider gave none (or only our placeholder).
    said = pc.if_else(
        pc.fill_null(
            pc.is_in(refusal, pa.array(["", REFUSAL_PLACEHOLDER], pa.large_string())), False
        ),
        pa.scalar(None, pa.large_string()),
        refusal,
    )
    truncated = (
        ok & ~refused & _mask(pc.is_in(finish, pa.array(sorted(TRUNCATED), pa.large_string())))
    )
    filtered = ok & ~refused & ~truncated & _is(finish, "content_filter")
    no_text = ~_mask(pc.greater(pc.binary_length(text), 0))  # null or ""
    empty = ok & ~refused & ~truncated & ~filtered & no_text
    usable = ok & ~refused & ~truncated & ~filtered & ~empty

    # Usually only usable answers have text: then the text column is already the answers.
    answers = text
    if (~usable & _valid(text)).any():
        answers = pc.if_else(pa.array(usable), text, pa.scalar(None, pa.large_string()))
    values, parse_errors = parse_answers(
        _strings(answers, index, name="text"),
        response_format,
        columns.output,
        prefix=prefix,
        model=model,
    )
    bad_parse = parse_errors.notna().to_numpy(dtype=bool) & usable
    keep = usable & ~bad_parse
    values = pd.DataFrame(
        {name: _where(values[name], keep) for name in values.columns}, index=index
    )

    parts: list[tuple[np.ndarray, pa.Array]] = []
    where = np.flatnonzero(failed)
    if len(where):
        parts.append((where, _join(code, ": ", message, at=where)))
    where = np.flatnonzero(gave_up)
    if len(where):
        tries = pc.take(attempts, pa.array(where))
        count = pc.fill_null(pc.cast(tries, pa.large_string()), "?")
        plural = pc.if_else(
            pc.fill_null(pc.equal(tries, 1), False), " attempt)", " attempts)"
        ).cast(pa.large_string())
        head = _join(code, ": ", message, " (gave up after ", at=where)
        parts.append((where, _join(head, count, plural)))
    where = np.flatnonzero(refused)
    if len(where):
        words = pc.take(said, pa.array(where))
        plain = "refusal: the model declined to answer"
        parts.append(
            (where, pc.fill_null(_join(plain + ": ", words), plain).cast(pa.large_string()))
        )
    where = np.flatnonzero(truncated)
    if len(where):
        cut = _join("truncated: the answer was cut off (finish reason ", finish, at=where)
        parts.append((where, _join(cut, "); raise max_tokens")))
    for mask, text_of in (
        (filtered, "content_filter: the provider's content filter withheld or cut the answer"),
        (empty, "empty: the model returned no text"),
    ):
        where = np.flatnonzero(mask)
        if len(where):
            parts.append((where, pa.repeat(pa.scalar(text_of, pa.large_string()), len(where))))
    where = np.flatnonzero(bad_parse)
    if len(where):
        parts.append((where, pa.array(parse_errors.to_numpy()[where], pa.large_string())))
    if unfinished is not None:
        where = np.flatnonzero(~(ok | failed | gave_up))
        if len(where):
            parts.append((where, pa.repeat(pa.scalar(unfinished, pa.large_string()), len(where))))
    error = _strings(_scatter(n_requests, parts), index)

    # Unusable answers keep what the model said: its text, or a refusal's message.
    refused_silently = refused & no_text
    raw_parts = [
        (np.flatnonzero(ok & ~usable & ~refused_silently), None),
        (np.flatnonzero(refused_silently), pc.fill_null(said, "")),
        (np.flatnonzero(bad_parse), None),
    ]
    raw = _strings(
        _scatter(
            n_requests,
            [(w, pc.take(src if src is not None else text, pa.array(w))) for w, src in raw_parts],
        ),
        index,
        name="text",
    )
    return values, error, raw


def _mask(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _is(values: pa.Array, value: str) -> np.ndarray:
    return _mask(pc.equal(values, value))


def _valid(values: pa.Array) -> np.ndarray:
    return np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _join(*pieces: pa.Array | str, at: np.ndarray | None = None) -> pa.Array:
    """Concatenate strings element-wise (null if any piece is), optionally at positions."""
    take = None if at is None else pa.array(at)
    args: list[object] = []
    for piece in pieces:
        if isinstance(piece, str):
            args.append(pa.scalar(piece, pa.large_string()))
        else:
            array = piece if take is None else pc.take(piece, take)
            args.append(array.cast(pa.large_string()))
    result: pa.Array = pc.binary_join_element_wise(*args, pa.scalar("", pa.large_string()))
    return result


def _scatter(n: int, parts: list[tuple[np.ndarray, pa.Array]]) -> pa.Array:
    """A length-n string array: each part's values at its positions, null elsewhere."""
    source = np.full(n, -1, dtype=np.int64)
    pools = []
    offset = 0
    for where, values in parts:
        if not len(where):
            continue
        source[where] = np.arange(offset, offset + len(where))
        offset += len(where)
        pools.append(values.cast(pa.large_string()))
    if not pools:
        return pa.nulls(n, pa.large_string())
    pool = pa.concat_arrays(pools)
    result: pa.Array = pool.take(pa.array(source, mask=source < 0))
    return result


def _strings(values: pa.Array, index: pd.Index, name: str | None = None) -> pd.Series:
    """An Arrow string array as a pandas "string" Series (no copy)."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return pd.Series(
        pd.arrays.ArrowStringArray(array.cast(pa.large_string())), index=index, name=name
    )


def _where(series: pd.Series, keep: np.ndarray) -> pd.Series:
    """``series.where(keep)``, skipped when it would change nothing."""
    if not (series.notna().to_numpy(dtype=bool) & ~keep).any():
        return series
    return series.where(pd.Series(keep, index=series.index))


def to_rows(
    frame: pd.DataFrame,
    row_keys: np.ndarray,
    input_errors: pa.Array,
    values: pd.DataFrame,
    error: pd.Series,
    raw: pd.Series,
    columns: Columns,
    *,
    extra: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Fan key-level columns out to rows and attach them to ``frame``."""
    n_keys = len(error)
    # Position n_keys is an all-missing row for inputs that never became a request.
    take = np.where(row_keys >= 0, row_keys, n_keys)

    fill = np.where(row_keys >= 0, row_keys, -1)

    def spread(series: pd.Series) -> pd.Series:
        if isinstance(series.array, pd.api.extensions.ExtensionArray) and not isinstance(
            series.array, pd.arrays.NumpyExtensionArray
        ):
            # One gather; -1 becomes the dtype's own missing value (what the padding gives).
            values = series.array.take(fill, allow_fill=True)
            return pd.Series(values, index=frame.index)
        padded = pd.concat(
            [series.reset_index(drop=True), pd.Series([pd.NA], dtype=series.dtype)],
            ignore_index=True,
        )
        out = padded.take(take)
        out.index = frame.index
        return out

    out = frame.copy(deep=False)
    for name in list(values.columns):
        out[name] = spread(values[name])
    row_error = spread(error)
    # By position: the errors come with a RangeIndex, the frame with any index.
    if input_errors.null_count == len(input_errors):
        out[columns.error] = row_error  # no input errors: nothing to overlay
    else:
        input_error = pd.Series(
            input_errors.to_pandas().to_numpy(), index=frame.index, dtype="string"
        )
        out[columns.error] = row_error.where(input_error.isna(), input_error)
    if raw.notna().any():
        out[columns.raw] = spread(raw)
    if extra is not None:
        for name in extra.columns:
            out[name] = spread(extra[name])
    return out
