"""Pilots: a few sampled requests answered through the realtime endpoint, before the batch.

A pilot shows real answers beside their inputs, measures real output tokens and refines the
estimate of the whole batch. Its answers are part of the job: a request the pilot answered is
never sent in the batch, so it is paid once (at the realtime rate, twice the batch rate).

Two ways in::

    pilot = df.llm.pilot("Classify: {review}", model="gpt-4o-mini", n=20)   # a Pilot
    pilot.answers          # the sampled rows' inputs beside their answers, tokens and cost
    pilot.estimate         # the refined Estimate of the full batch
    out = df.llm.batch("Classify: {review}", model="gpt-4o-mini")   # reuses the 20 answers

    out = df.llm.batch("Classify: {review}", model="gpt-4o-mini", pilot=20)  # all in one

The sample is deterministic: ``seed`` fixes a permutation of the distinct requests and the
pilot takes its first ``n``, so a larger ``n`` with the same seed extends a smaller one.

Durability: every answer is appended to ``BATCHFRAME_HOME/pilots/<spec digest>.jsonl`` (and
fsynced) the moment it arrives, keyed by the exact request it answers (model, parameters and
rendered messages). Re-running the pilot or the batch matches stored answers to requests by
content, so an interrupted pilot resumes without paying again. When the batch job is planned,
the matched answers are written into the job folder (``results/pilot.parquet``, shard -1) and
their requests are left out of the uploaded shards. Only answers count: a pilot request that
errored is sent in the batch like any other. ``fresh=True`` ignores stored pilot answers.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError
from .estimate import Estimate
from .estimate.actual import PILOT_SHARD, result_costs
from .estimate.requests import estimate_prepared, request_bodies
from .join import Columns, key_level
from .outcomes import settle
from .prompts.build import Prepared
from .providers.decode import Row
from .records import OK, RESULT_SCHEMA, RequestSpec
from .store.files import PRIVATE_FILE, private_dir

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Pilot",
    "PilotStore",
    "adopt",
    "run_pilot",
    "sample_keys",
    "show",
]

DEFAULT_CONCURRENCY = 4
_RESULT_FIELDS = tuple(name for name in RESULT_SCHEMA.names if name != "key")
_SEP = "\x1f"  # joins message parts into one matching key; equality is re-checked exactly


def sample_keys(n_requests: int, n: int, seed: int) -> np.ndarray:
    """The request keys a pilot of ``n`` takes, in sample order (first ``n`` of a permutation)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InputError(f"pilot needs a whole number of requests >= 1, got {n!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InputError(f"pilot_seed must be an integer, got {seed!r}.")
    order = np.random.default_rng(int(seed)).permutation(n_requests)
    return order[: min(int(n), n_requests)].astype(np.int64)


# --- the durable store ------------------------------------------------------------------------


def spec_digest(spec: RequestSpec) -> str:
    """What makes two requests with the same messages the same request: model and params."""
    text = json.dumps(spec.to_json(), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class PilotStore:
    """Pilot answers under ``home/pilots``, one append-only JSONL file per request spec."""

    _lock = threading.Lock()

    def __init__(self, home: Path) -> None:
        self.folder = home / "pilots"

    def path(self, spec: RequestSpec) -> Path:
        return self.folder / f"{spec_digest(spec)}.jsonl"

    def append(self, spec: RequestSpec, parts: Sequence[str], row: dict[str, Any]) -> None:
        """Record one answer durably (flushed and fsynced before returning)."""
        line = orjson.dumps(
            {"parts": list(parts), "result": row, "at": time.time(), "model": spec.model}
        )
        private_dir(self.folder)
        path = self.path(spec)
        with self._lock:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
            try:
                os.write(fd, line + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)

    def load(self, spec: RequestSpec) -> dict[tuple[str, ...], dict[str, Any]]:
        """Stored results by message parts; an answer wins over a later error for the same."""
        path = self.path(spec)
        if not path.exists():
            return {}
        found: dict[tuple[str, ...], dict[str, Any]] = {}
        with path.open("rb") as stream:
            for raw in stream:
                try:
                    record = orjson.loads(raw)
                    parts = tuple(record["parts"])
                    row = dict(record["result"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash mid-write
                if found.get(parts, {}).get("fate") == OK and row.get("fate") != OK:
                    continue
                found[parts] = row
        return found

    def match(self, prepared: Prepared, *, answered_only: bool = True) -> dict[int, dict[str, Any]]:
        """Stored results for ``prepared``'s requests, by request key."""
        stored = self.load(prepared.spec)
        if answered_only:
            stored = {p: r for p, r in stored.items() if r.get("fate") == OK}
        if not stored or prepared.n_requests == 0:
            return {}
        wanted = pa.array([_SEP.join(p) for p in stored], type=pa.large_string())
        out: dict[int, dict[str, Any]] = {}
        for batch in prepared.requests.batches():
            parts = batch.columns[1:]
            hits = pc.is_in(_joined(parts), value_set=wanted)
            candidates = np.flatnonzero(np.asarray(hits.to_numpy(zero_copy_only=False)))
            keys = batch.column(0)
            for i in candidates.tolist():
                exact = tuple(p[i].as_py() for p in parts)  # the separator may occur in text
                if exact in stored:
                    out[int(keys[i].as_py())] = stored[exact]
        return out


def _joined(parts: Sequence[pa.Array]) -> pa.Array:
    cast = [p.cast(pa.large_string()) for p in parts]
    if len(cast) == 1:
        return cast[0]
    return pc.binary_join_element_wise(*cast, pa.scalar(_SEP, pa.large_string()))


def _row_dict(row: Row) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _RESULT_FIELDS}


def results_table(results: dict[int, dict[str, Any]]) -> pa.Table:
    """RESULT_SCHEMA rows (plus shard -1 and attempt 0) for results by key."""
    keys = sorted(results)
    columns: dict[str, Any] = {"key": pa.array(keys, type=pa.int64())}
    for name in _RESULT_FIELDS:
        columns[name] = pa.array(
            [results[k].get(name) for k in keys], type=RESULT_SCHEMA.field(name).type
        )
    table = pa.table(columns, schema=RESULT_SCHEMA)
    table = table.append_column("shard", pa.array(np.full(len(keys), PILOT_SHARD, np.int64)))
    return table.append_column("attempt", pa.array(np.zeros(len(keys), np.int64)))


def adopt(prepared: Prepared, home: Path) -> pa.Table | None:
    """Stored pilot answers for ``prepared``'s requests, as the job's ``results/pilot.parquet``.

    None when there are none. The planner leaves these requests out of the batch.
    """
    found = PilotStore(home).match(prepared)
    return results_table(found) if found else None


# --- realtime calls -----------------------------------------------------------------------------


def _send(provider: Any, spec: RequestSpec, key: int, body: dict[str, Any]) -> Row:
    """One request through the realtime endpoint, decoded like a batch result line."""
    from .providers import anthropic as anthropic_provider
    from .providers import openai as openai_provider
    from .providers.base import map_sdk_errors

    custom_id = f"r{key}"
    client = provider.client
    anthropic = provider.name == "anthropic"
    try:
        if anthropic:
            answer = client.post("/v1/messages", body=body, cast_to=object)
            line: dict[str, Any] = {
                "custom_id": custom_id,
                "result": {"type": "succeeded", "message": answer},
            }
        else:
            path = (spec.endpoint or openai_provider.CHAT).removeprefix("/v1")
            answer = client.post(path, body=body, cast_to=object)
            line = {"custom_id": custom_id, "response": {"status_code": 200, "body": answer}}
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        module = type(exc).__module__.split(".")[0]
        if module not in ("openai", "anthropic", "httpx2", "httpx"):
            raise
        if status in (401, 403) or status is None:
            # A bad key stops the pilot; so does an unreachable server (nothing would work).
            with map_sdk_errors(provider.name, "answer the pilot request"):
                raise
        body_err = getattr(exc, "body", None)
        if anthropic:
            envelope = body_err if isinstance(body_err, dict) else {}
            if "error" not in envelope:
                envelope = {"type": "error", "error": {"type": "api_error", "message": str(exc)}}
            line = {"custom_id": custom_id, "result": {"type": "errored", "error": envelope}}
        else:
            inner: dict[str, Any] = body_err if isinstance(body_err, dict) else {}
            nested = inner.get("error")
            if isinstance(nested, dict):
                inner = nested
            inner = inner or {"message": str(exc)}
            line = {
                "custom_id": custom_id,
                "response": {"status_code": status, "body": {"error": inner}},
            }
    decode = anthropic_provider.decode_line if anthropic else openai_provider.decode_line
    return decode(line)


# --- the Pilot ----------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Pilot:
    """A pilot's answers beside their inputs and the refined estimate of the full batch."""

    model: str
    provider: str
    answers: pd.DataFrame
    estimate: Estimate
    sampled: int
    called: int
    reused: int
    succeeded: int
    cost: float | None
    seed: int
    notes: tuple[str, ...] = field(default=())
    # Every answer this pilot (and earlier ones for the same requests) holds, by request key:
    # what the batch job adopts instead of sending.
    _answered: dict[int, dict[str, Any]] = field(default_factory=dict, compare=False)

    def results(self) -> pa.Table:
        """The answers the batch adopts, as result rows (shard -1, attempt 0)."""
        return results_table(self._answered)

    @property
    def output_tokens(self) -> pd.Series:
        """Measured output tokens per sampled request."""
        return self.answers["output_tokens"]

    def _head(self) -> str:
        cost = "unknown" if self.cost is None else f"${self.cost:,.6f}".rstrip("0").rstrip(".")
        reused = f", {self.reused} reused from earlier runs" if self.reused else ""
        return (
            f"Pilot of {self.sampled} request(s) through {self.model}'s realtime endpoint: "
            f"{self.succeeded} answered ({self.called} called now{reused}), cost {cost}"
        )

    def __repr__(self) -> str:
        with pd.option_context(
            "display.max_colwidth", 40, "display.width", 120, "display.max_rows", 60
        ):
            table = self.answers.to_string(max_colwidth=40)
        notes = [f"note: {n}" for n in self.notes]
        return "\n".join([self._head(), table, *notes, "", repr(self.estimate)])

    __str__ = __repr__

    def _repr_html_(self) -> str:
        with pd.option_context("display.max_colwidth", 80, "display.max_rows", 60):
            table = self.answers.to_html(escape=True, na_rep="")
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        notes_html = f"<ul>{notes}</ul>" if notes else ""
        return (
            f"<div><p style='font-weight:600'>{html.escape(self._head())}</p>{table}"
            f"{notes_html}<div style='margin-top:8px'>{self.estimate._repr_html_()}</div></div>"
        )


def _representative_rows(prepared: Prepared, keys: np.ndarray) -> np.ndarray:
    """Position of the first row sending each of ``keys``."""
    row_keys = prepared.row_keys
    valid = np.flatnonzero(row_keys >= 0)
    first = np.full(prepared.n_requests, -1, dtype=np.int64)
    # Reverse so the earliest position is written last and wins.
    first[row_keys[valid][::-1]] = valid[::-1]
    return first[keys]


def _answers_frame(
    frame: pd.DataFrame,
    prepared: Prepared,
    keys: np.ndarray,
    results: dict[int, dict[str, Any]],
    *,
    input_columns: Sequence[Any],
    output: str,
    prefix: str | None,
    schema_model: Any,
) -> pd.DataFrame:
    columns = Columns(output)
    positions = _representative_rows(prepared, keys)
    inputs = frame.iloc[positions][list(input_columns)].copy()
    sub = results_table({i: results[int(k)] for i, k in enumerate(keys) if int(k) in results})
    settled = settle(sub, len(keys))
    values, error, raw = key_level(
        settled,
        len(keys),
        response_format=prepared.spec.response_format,
        columns=columns,
        unfinished="not_run: already submitted in the batch job; see its results",
        prefix=prefix,
        model=schema_model,
    )
    t = settled.table.reindex(pd.RangeIndex(len(keys)))
    not_ok = (t["fate"] != OK).fillna(True).to_numpy(bool) & t["fate"].notna().to_numpy(bool)
    if not_ok.any():
        code = t["error_code"].astype("string").fillna("error")
        message = t["error_message"].astype("string").fillna("")
        error[not_ok] = (
            code[not_ok] + ": " + message[not_ok] + " (this request goes into the batch)"
        )
    out = inputs
    for name in values.columns:
        out[name] = values[name].set_axis(out.index)
    out[columns.error] = error.set_axis(out.index)
    if raw.notna().any():
        out[columns.raw] = raw.set_axis(out.index)
    out["input_tokens"] = t["input_tokens"].astype("Int64").set_axis(out.index)
    out["output_tokens"] = t["output_tokens"].astype("Int64").set_axis(out.index)
    costs = result_costs(prepared.spec.model, t.assign(shard=PILOT_SHARD))
    out["cost"] = pd.array(costs[0] if costs is not None else [None] * len(t), dtype="Float64")
    return out


def run_pilot(
    frame: pd.DataFrame,
    prepared: Prepared,
    provider: Any,
    *,
    n: int,
    home: Path,
    seed: int = 0,
    input_columns: Sequence[Any] = (),
    output: str = "output",
    prefix: str | None = None,
    schema_model: Any = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    reuse: bool = True,
    exact: bool = False,
    job_results: dict[int, dict[str, Any]] | None = None,
    job_pending: Iterable[int] = (),
    job_id: str | None = None,
) -> Pilot:
    """Answer ``n`` sampled requests of ``prepared`` through the realtime endpoint now.

    Stored answers (earlier pilots, ``reuse``) and a matching job's results (``job_results``)
    are shown instead of calling again; ``job_pending`` keys are already in a submitted batch
    and are not called at all.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InputError(f"concurrency must be a whole number >= 1, got {concurrency!r}.")
    keys = np.sort(sample_keys(prepared.n_requests, n, seed))
    store = PilotStore(home)
    stored = store.match(prepared) if reuse else {}
    known = {**stored, **(job_results or {})}
    pending = set(job_pending) - set(known)
    todo = np.asarray([k for k in keys.tolist() if k not in known and k not in pending], np.int64)
    notes: list[str] = []
    if pending & set(keys.tolist()):
        notes.append(
            f"{len(pending & set(keys.tolist()))} sampled request(s) are already submitted in "
            f"job {job_id}; they are not called again."
        )

    results = {k: known[k] for k in keys.tolist() if k in known}
    spec = prepared.spec
    if len(todo):
        bodies = request_bodies(prepared, provider, todo)
        taken = prepared.requests.take(todo)
        texts = {key: [p[i].as_py() for p in taken] for i, key in enumerate(todo.tolist())}
        _ = provider.client  # fail fast on a missing key, before any thread starts

        def call(item: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
            key, body = item
            row = _row_dict(_send(provider, spec, key, body))
            store.append(spec, texts[key], row)
            return key, row

        workers = min(concurrency, len(todo))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bf-pilot") as pool:
            futures = [pool.submit(call, item) for item in zip(todo.tolist(), bodies)]
            errors: list[BaseException] = []
            for future in futures:
                try:
                    key, row = future.result()
                    results[key] = row
                except BaseException as exc:  # finish the others: their answers are paid
                    errors.append(exc)
            if errors:
                raise errors[0]
    # Answers of this sample plus any other stored ones for these requests: the estimate
    # and the batch both take all of them.
    answered = dict(stored)
    from_job = job_results or {}
    answered.update({k: r for k, r in results.items() if r.get("fate") == OK and k not in from_job})
    reused = sum(1 for k in keys.tolist() if k in known)
    frame_answers = _answers_frame(
        frame,
        prepared,
        keys,
        results,
        input_columns=input_columns,
        output=output,
        prefix=prefix,
        schema_model=schema_model,
    )
    table = results_table(answered).to_pandas() if answered else None
    estimate = estimate_prepared(prepared, provider, exact=exact, pilot_results=table)
    sample_ok = [k for k in keys.tolist() if results.get(k, {}).get("fate") == OK]
    costs = None
    if sample_ok:
        sample = results_table({k: results[k] for k in sample_ok}).to_pandas()
        costs = result_costs(spec.model, sample)
    if costs is not None:
        cost: float | None = float(costs[0].sum())
    else:
        cost = None if estimate.price_source == "unpriced" else 0.0
    if len(keys) < n:
        notes.append(f"The job has only {len(keys)} distinct request(s); all are in the pilot.")
    return Pilot(
        model=spec.model,
        provider=spec.provider,
        answers=frame_answers,
        estimate=estimate,
        sampled=len(keys),
        called=len(todo),
        reused=reused,
        succeeded=len(sample_ok),
        cost=cost,
        seed=int(seed),
        notes=tuple(notes),
        _answered=answered,
    )


def job_answers(store: Any, record: Any) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """A stored job's answers by key, and the keys it may still answer (not to be called)."""
    from .outcomes import load_results

    settled = settle(load_results(store.job_dir(record.id) / "results"), record.requests)
    t = settled.table
    ok = t[t["fate"] == OK] if len(t) else t
    records = ok.reset_index().to_dict("records")
    answers = {int(r["key"]): {name: _plain(r[name]) for name in _RESULT_FIELDS} for r in records}
    pending: list[int] = []
    if record.state not in ("finished", "cancelled"):
        pending = [k for k in range(record.requests) if k not in answers]
    return answers, pending


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.integer):
        return int(value)
    return value


def show(pilot: Pilot, progress: Any) -> None:
    """Display a pilot where the job's progress would go (nothing when progress is off)."""
    from .progress import in_notebook

    if progress is None or progress is False:
        return
    mode = str(progress).strip().lower() if isinstance(progress, str | bool) else "auto"
    if mode in ("true", "auto"):
        mode = os.environ.get("BATCHFRAME_PROGRESS", "").strip().lower() or "auto"
    if mode == "off":
        return
    if mode in ("auto", "panel") and in_notebook():
        from IPython.display import display

        display(pilot)
        return
    print(repr(pilot), file=sys.stderr, flush=True)
