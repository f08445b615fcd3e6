"""``DataFrame.llm``: the thin pandas face. Checks arguments, builds a job, returns frames."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from . import jsonl, settings
from .errors import BudgetExceededError, InputError
from .estimate import Estimate
from .estimate.requests import estimate_prepared
from .job import BatchJob, open_store
from .pilot import Pilot, adopt, job_answers, run_pilot, sample_keys
from .pilot import show as show_pilot
from .planner import create_job
from .prompts.build import Prepared, custom_ids, prepare
from .prompts.render import ON_MISSING_CHOICES, OnMissing
from .prompts.template import Template, parse
from .providers import Provider, infer_provider, make_provider
from .records import RequestSpec, ResponseFormat
from .structured import response_format_for

ROLES = ("system", "user", "assistant")
_ENDED = ("finished", "cancelled")
Prompt = str | Sequence[tuple[str, str]]


@pd.api.extensions.register_dataframe_accessor("llm")
class LLMAccessor:
    """Send every row to a batch API: ``df.llm.batch("...{column}...", model=...)``."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def batch(
        self,
        template: Prompt,
        *,
        model: str,
        provider: str | None = None,
        system: str | None = None,
        output: str = "output",
        client: Any = None,
        dry_run: bool = False,
        max_cost: float | None = None,
        choices: Sequence[str] | None = None,
        schema: Any = None,
        prefix: str | None = None,
        wait: bool = True,
        fresh: bool = False,
        on_missing: OnMissing = "row_error",
        dedupe: bool = True,
        usage: bool = False,
        progress: Any = True,
        home: str | Path | None = None,
        poll_interval: float | None = None,
        max_attempts: int | None = None,
        max_in_flight: int | None = None,
        max_shard_requests: int | None = None,
        max_shard_bytes: int | None = None,
        endpoint: str | None = None,
        pilot: int | None = None,
        pilot_seed: int = 0,
        exact: bool = False,
        **params: Any,
    ) -> pd.DataFrame | BatchJob | Estimate:
        """Run ``template`` over every row through the provider's batch API.

        Returns the frame with ``output`` and ``{output}_error`` columns (``wait=True``), a
        :class:`BatchJob` (``wait=False``), or an :class:`Estimate` (``dry_run=True``).
        Running the same call again re-attaches to the stored job; ``fresh=True`` starts anew.

        ``pilot=N`` first answers N sampled requests through the realtime endpoint, shows them
        and the refined estimate, then (unless ``dry_run``) sends the rest in the batch; the
        pilot's answers are part of the result and are not paid again. ``exact=True`` counts
        Claude input tokens with Anthropic's count_tokens endpoint (needs a key and network).
        """
        _check_output(output)
        response_format, schema_model = response_format_for(choices, schema, prefix)
        name = infer_provider(model, provider)
        backend = make_provider(name, client)
        prepared = self._prepare(
            template,
            system,
            backend,
            model,
            params,
            endpoint,
            response_format,
            on_missing,
            dedupe,
            home,
        )

        if pilot is not None:
            sample_keys(prepared.n_requests, pilot, pilot_seed)  # validate before anything else
        store = None if (dry_run and pilot is None) else open_store(home)
        existing = None if (fresh or store is None) else store.find_job(prepared.fingerprint)
        estimate = None
        answered = None
        if existing is None or dry_run or max_cost is not None:
            # Answers an earlier pilot stored for these requests are part of this job.
            if existing is None and store is not None and not fresh:
                answered = adopt(prepared, store.home)
            planned = None
            if pilot is not None and existing is None:
                planned = sample_keys(prepared.n_requests, pilot, pilot_seed)
            estimate = estimate_prepared(
                prepared,
                backend,
                exact=exact,
                pilot_keys=planned,
                pilot_results=None if answered is None else answered.to_pandas(),
            )
        spends = not dry_run or pilot is not None
        if max_cost is not None and spends and (existing is None or existing.state not in _ENDED):
            assert estimate is not None
            _check_budget(estimate, max_cost)  # before anything is sent, the pilot included
        if pilot is not None and existing is None:
            assert store is not None
            trial = run_pilot(
                self._frame,
                prepared,
                backend,
                n=pilot,
                seed=pilot_seed,
                home=store.home,
                input_columns=self._input_columns(template, system),
                output=output,
                prefix=prefix,
                schema_model=schema_model,
                reuse=not fresh,
                exact=exact,
            )
            show_pilot(trial, progress)
            estimate, answered = trial.estimate, trial.results()
            if max_cost is not None and not dry_run:
                _check_budget(estimate, max_cost, after_pilot=trial.called)
        if dry_run:
            assert estimate is not None
            return estimate
        assert store is not None

        if existing is None:
            assert estimate is not None
            record = create_job(
                store,
                backend,
                self._frame,
                prepared,
                options={
                    "output": output,
                    "on_missing": on_missing,
                    "prefix": prefix,
                    "usage": usage,
                },
                estimated_cost=estimate.total_cost,
                max_shard_requests=max_shard_requests,
                max_shard_bytes=max_shard_bytes,
                answered=answered,
                estimate=estimate.to_dict(),
            )
            job_id = record.id
        else:
            job_id = existing.id
            prepared.requests.discard()  # a spill file is not needed: the job has its own
            if (
                existing.options.get("output") != output
                or existing.options.get("prefix") != prefix
                or bool(existing.options.get("usage")) != usage
            ):
                store.update_job(
                    job_id,
                    options={
                        **existing.options,
                        "output": output,
                        "prefix": prefix,
                        "usage": usage,
                    },
                )

        job = BatchJob(
            store,
            job_id,
            client=client,
            frame=self._frame,
            progress=progress,
            poll_interval=poll_interval,
            max_attempts=max_attempts,
            max_in_flight=max_in_flight,
            schema_model=schema_model,
        )
        job._provider = backend
        if not wait:
            return job.start()
        return job.result()

    def pilot(
        self,
        template: Prompt,
        *,
        model: str,
        n: int = 20,
        seed: int = 0,
        provider: str | None = None,
        system: str | None = None,
        output: str = "output",
        client: Any = None,
        choices: Sequence[str] | None = None,
        schema: Any = None,
        prefix: str | None = None,
        fresh: bool = False,
        on_missing: OnMissing = "row_error",
        dedupe: bool = True,
        exact: bool = False,
        home: str | Path | None = None,
        concurrency: int = 4,
        endpoint: str | None = None,
        **params: Any,
    ) -> Pilot:
        """Answer ``n`` sampled requests through the realtime endpoint now, before the batch.

        Takes the same arguments as :meth:`batch`. Returns a :class:`~batchframe.pilot.Pilot`:
        ``.answers`` (the sampled rows' inputs beside their answers, tokens and cost) and
        ``.estimate`` (the full batch, refined with the measured output tokens). Answers are
        stored as they arrive; the same ``batch(...)`` call afterwards adopts them instead of
        sending those requests again, and re-running the pilot does not pay twice. The sample
        is deterministic: the first ``n`` of a permutation fixed by ``seed``.
        """
        _check_output(output)
        response_format, schema_model = response_format_for(choices, schema, prefix)
        backend = make_provider(infer_provider(model, provider), client)
        prepared = self._prepare(
            template,
            system,
            backend,
            model,
            params,
            endpoint,
            response_format,
            on_missing,
            dedupe,
            home,
        )
        store = open_store(home)
        existing = None if fresh else store.find_job(prepared.fingerprint)
        job_results: dict[int, dict[str, Any]] = {}
        pending: list[int] = []
        if existing is not None:
            # The batch job for this call exists: show its answers, never pay for them twice.
            job_results, pending = job_answers(store, existing)
        return run_pilot(
            self._frame,
            prepared,
            backend,
            n=n,
            seed=seed,
            home=store.home,
            input_columns=self._input_columns(template, system),
            output=output,
            prefix=prefix,
            schema_model=schema_model,
            concurrency=concurrency,
            reuse=not fresh,
            exact=exact,
            job_results=job_results,
            job_pending=pending,
            job_id=None if existing is None else existing.id,
        )

    def to_jsonl(
        self,
        path: str | Path,
        template: Prompt,
        *,
        model: str,
        provider: str | None = None,
        system: str | None = None,
        choices: Sequence[str] | None = None,
        schema: Any = None,
        on_missing: OnMissing = "row_error",
        dedupe: bool = True,
        endpoint: str | None = None,
        chunk_size: int = 100_000,
        **params: Any,
    ) -> Path:
        """Write the exact request lines ``batch()`` would upload (one per distinct request)."""
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise InputError(f"chunk_size must be a whole number >= 1, got {chunk_size!r}.")
        response_format, _ = response_format_for(choices, schema)
        backend = make_provider(infer_provider(model, provider))
        prepared = self._prepare(
            template, system, backend, model, params, endpoint, response_format, on_missing, dedupe
        )
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial")
        try:  # a half-written file never takes the target's name
            with partial.open("wb") as stream:
                for batch in prepared.requests.batches():
                    jsonl.write_chunks(
                        stream, batch.num_rows, chunk_size, _batch_encoder(backend, prepared, batch)
                    )
            partial.replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            prepared.requests.discard()
        return target

    # -- internals --------------------------------------------------------------------------

    def _prepare(
        self,
        template: Prompt,
        system: str | None,
        backend: Provider,
        model: str,
        params: dict[str, Any],
        endpoint: str | None,
        response_format: ResponseFormat | None,
        on_missing: OnMissing,
        dedupe: bool,
        home: str | Path | None = None,
    ) -> Prepared:
        frame = self._frame
        if not isinstance(frame, pd.DataFrame):
            raise InputError(f"batchframe works on a pandas DataFrame, got {type(frame).__name__}.")
        if len(frame) == 0:
            raise InputError("The frame is empty: there are no rows to send.")
        if on_missing not in ON_MISSING_CHOICES:
            raise InputError(f"on_missing must be one of {ON_MISSING_CHOICES}, got {on_missing!r}.")
        roles, templates = _templates(template, system, frame.columns)
        labels = {str(c): c for c in frame.columns}
        if all(t.is_constant for t in templates):
            warnings.warn(
                "The template has no {column} placeholders, so every row sends the same prompt "
                "(sent once and copied to every row).",
                UserWarning,
                stacklevel=3,
            )
        spec = backend.prepare_spec(
            RequestSpec(
                provider=backend.name,
                model=model,
                roles=roles,  # type: ignore[arg-type]
                params=jsonl.plain_params(params),
                endpoint=endpoint,
                response_format=response_format,
            )
        )
        return prepare(
            frame,
            spec,
            templates,
            labels=labels,
            on_missing=on_missing,
            dedupe=dedupe,
            spill_dir=settings.home(home) / "staging",
        )

    def _estimate(self, prepared: Prepared, backend: Provider) -> Estimate:
        return estimate_prepared(prepared, backend)

    def _input_columns(self, template: Prompt, system: str | None) -> list[Any]:
        """The frame's columns the template reads, in order of first use."""
        _, templates = _templates(template, system, self._frame.columns)
        labels = {str(c): c for c in self._frame.columns}
        seen: dict[Any, None] = {}
        for t in templates:
            for name in t.columns:
                seen.setdefault(labels.get(name, name), None)
        return list(seen)


def _batch_encoder(
    backend: Provider, prepared: Prepared, batch: pa.RecordBatch
) -> Callable[[int, int], pa.Array]:
    """Encode rows ``start:stop`` of a batch of requests (jsonl.write_chunks runs it on a
    thread while the previous chunk is written)."""
    keys = batch.column(0)
    parts = batch.columns[1:]

    def encode(start: int, stop: int) -> pa.Array:
        size = stop - start
        return backend.encode(
            prepared.spec,
            custom_ids(keys.slice(start, size)),
            [p.slice(start, size) for p in parts],
        )

    return encode


def _templates(
    template: Prompt, system: str | None, columns: pd.Index
) -> tuple[tuple[str, ...], list[Template]]:
    pairs: list[tuple[str, str]]
    if isinstance(template, str):
        pairs = [("user", template)]
    elif (
        isinstance(template, Sequence)
        and template
        and all(isinstance(p, tuple | list) and len(p) == 2 for p in template)
    ):
        pairs = [(str(p[0]), p[1]) for p in template]
    else:
        raise InputError(
            "The template must be a string like 'Summarise: {text}' or a list of (role, template) "
            "pairs like [('system', '...'), ('user', '{text}')]."
        )
    if system is not None:
        if any(role == "system" for role, _ in pairs):
            raise InputError(
                "Pass the system prompt either as system= or as a ('system', ...) pair, not both."
            )
        pairs = [("system", system), *pairs]
    for i, (role, _) in enumerate(pairs):
        if role not in ROLES:
            raise InputError(f"Message {i} has role {role!r}; roles are {ROLES}.")
    templates = [
        parse(text, columns, where=f"{role} template" if len(pairs) > 1 else "template")
        for role, text in pairs
    ]
    return tuple(role for role, _ in pairs), templates


def _check_output(output: object) -> None:
    if not isinstance(output, str) or not output.strip():
        raise InputError(f"output= must be a non-empty column name, got {output!r}.")


def _check_budget(estimate: Estimate, max_cost: float, *, after_pilot: int = 0) -> None:
    """Refuse (BudgetExceededError) when the estimate's upper bound exceeds ``max_cost`` USD."""
    if isinstance(max_cost, bool) or not isinstance(max_cost, int | float) or not max_cost >= 0:
        raise InputError(f"max_cost must be a number of USD >= 0, got {max_cost!r}.")
    sent = (
        f"Only the {after_pilot}-request pilot was sent; its answers are stored and reused by "
        "the next call."
        if after_pilot
        else "Nothing was sent."
    )
    model = estimate.model
    total = estimate.total_cost
    if total is None:
        if estimate.price_source == "unpriced":
            reason = (
                f"{model} has no known price, so the cost cannot be checked. Register its rates "
                f"with batchframe.set_price({model!r}, input=..., output=...) (USD per million "
                "tokens) or drop max_cost."
            )
        else:
            reason = (
                f"the output of {model} is unbounded ({estimate.output_bound_source}), so the "
                "cost has no upper bound. Set max_tokens=... or drop max_cost."
            )
        raise BudgetExceededError(
            f"max_cost=${max_cost:,.4f} is set but {reason} {sent}", estimate=estimate
        )
    if total > max_cost:
        what = "cost (pilot plus batch)" if estimate.pilot_requests else "batch cost"
        over = total - max_cost
        share = f" ({over / max_cost:.0%} over)" if 0 < over / max(max_cost, 1e-12) < 100 else ""
        fit = estimate.rows_within(max_cost)
        hints = [f"about {fit:,} of the {estimate.rows:,} rows would fit (df.sample(n))"]
        tokens = estimate.max_tokens_within(max_cost)
        if tokens is not None and tokens >= 1:
            hints.append(f"max_tokens={tokens:,} instead of {estimate.output_bound_source}")
        expected = ""
        if estimate.total_cost_expected is not None:
            expected = f" (expected {_usd(estimate.total_cost_expected)})"
        raise BudgetExceededError(
            f"The estimated {what} is up to {_usd(total)}{expected}, which exceeds "
            f"max_cost={_usd(max_cost)} by {_usd(over)}{share}. Within the budget: "
            f"{'; or '.join(hints)}; or raise max_cost. {sent}",
            estimate=estimate,
        )


def _usd(value: float) -> str:
    if value >= 1 or value == 0:
        return f"${value:,.2f}"
    return f"${value:.4f}" if value >= 0.01 else f"${value:.6f}"
