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
    """Per-key values (one or more columns), error text and raw text for unusable answers."""
    t = settled.table.reindex(pd.RangeIndex(n_requests, name="key"))
    fate = t["fate"]
    text = t["text"].astype("string")
    finish = t["finish_reason"].astype("string")
    refusal = t["refusal"].astype("string")
    code = t["error_code"].astype("string").fillna("error")
    message = t["error_message"].astype("string").fillna("")
    attempts = t["attempt"].astype("Int64") if "attempt" in t else pd.Series(pd.NA, index=t.index)

    error = pd.Series(pd.NA, index=t.index, dtype="string")
    ok = (fate == OK).fillna(False).to_numpy(dtype=bool)
    failed = (fate == FAILED).fillna(False).to_numpy(dtype=bool)
    gave_up = ((fate == RETRY).fillna(False) & (settled.status != PENDING)).to_numpy(dtype=bool)

    error[failed] = code[failed] + ": " + message[failed]
    error[gave_up] = (
        code[gave_up]
        + ": "
        + message[gave_up]
        + " (gave up after "
        + attempts[gave_up].astype("string").fillna("?")
        + pd.Series(
            np.where(
                attempts[gave_up].eq(1).fillna(False).to_numpy(bool), " attempt)", " attempts)"
            ),
            dtype="string",
        ).set_axis(attempts[gave_up].index)
    )
    refused = ok & refusal.notna().to_numpy(dtype=bool)
    # The refusal's own words, unless the provider gave none (or only our placeholder).
    said = refusal.where(~refusal.isin(["", REFUSAL_PLACEHOLDER]))
    error[refused] = ("refusal: the model declined to answer: " + said[refused]).fillna(
        "refusal: the model declined to answer"
    )
    truncated = ok & ~refused & finish.isin(TRUNCATED).fillna(False).to_numpy(dtype=bool)
    error[truncated] = (
        "truncated: the answer was cut off (finish reason "
        + finish[truncated]
        + "); raise max_tokens"
    )
    filtered = (
        ok & ~refused & ~truncated & (finish == "content_filter").fillna(False).to_numpy(dtype=bool)
    )
    error[filtered] = "content_filter: the provider's content filter withheld or cut the answer"
    empty = (
        ok
        & ~refused
        & ~truncated
        & ~filtered
        & (text.fillna("").str.len() == 0).to_numpy(dtype=bool)
    )
    error[empty] = "empty: the model returned no text"
    usable = ok & ~refused & ~truncated & ~filtered & ~empty

    # Unusable answers keep what the model said: its text, or a refusal's message.
    raw = text.where(pd.Series(ok & ~usable, index=t.index))
    no_text = pd.Series(refused, index=t.index) & text.fillna("").eq("")
    raw[no_text] = said[no_text].fillna("")
    values, parse_errors = parse_answers(
        text.where(pd.Series(usable, index=t.index)),
        response_format,
        columns.output,
        prefix=prefix,
        model=model,
    )
    bad_parse = parse_errors.notna().to_numpy(dtype=bool) & usable
    error[bad_parse] = parse_errors[bad_parse]
    raw[bad_parse] = text[bad_parse]
    keep = pd.Series(usable & ~bad_parse, index=t.index)
    values = pd.DataFrame(
        {name: values[name].where(keep) for name in values.columns}, index=t.index
    )

    if unfinished is not None:
        none_yet = ~(ok | failed | gave_up)
        error[none_yet] = unfinished
    return values, error, raw


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

    def spread(series: pd.Series) -> pd.Series:
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
    input_error = pd.Series(input_errors.to_pandas().to_numpy(), index=frame.index, dtype="string")
    out[columns.error] = row_error.where(input_error.isna(), input_error)
    if raw.notna().any():
        out[columns.raw] = spread(raw)
    if extra is not None:
        for name in extra.columns:
            out[name] = spread(extra[name])
    return out
