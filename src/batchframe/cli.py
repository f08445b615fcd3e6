"""``batchframe``: the same runner from a shell, for scheduled jobs.

    batchframe run tickets.parquet --template "Label: {body}" --model gpt-4o-mini \\
        --output label --choices billing,technical,other --out labelled.parquet
    batchframe jobs | status JOB | wait JOB | result JOB --out FILE | cancel JOB

``run`` is idempotent: run it again (say, after the machine rebooted) and it re-attaches to
the stored job instead of submitting a new one. Exit codes: 0 done, 1 job failed or had row
errors with --strict, 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

import batchframe

from .errors import BatchframeError, InputError


def _read(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet" or path.is_dir():
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True)
    raise InputError(f"Cannot read {path}: use a .csv, .parquet (file or folder) or .jsonl file.")


def _write(frame: pd.DataFrame, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path)
    elif suffix in (".jsonl", ".ndjson"):
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path)


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--param takes key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchframe", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--home", help="job store folder (default: BATCHFRAME_HOME or ~/.batchframe)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a file of rows through a batch API and write the result")
    run.add_argument("input", type=Path, help=".csv, .parquet or .jsonl")
    run.add_argument("--template", required=True, help="prompt with {column} placeholders")
    run.add_argument("--model", required=True)
    run.add_argument("--provider", choices=["openai", "anthropic"])
    run.add_argument("--system")
    run.add_argument("--output", default="output", help="result column name")
    run.add_argument(
        "--out", type=Path, help="where to write the joined result (.parquet/.csv/.jsonl)"
    )
    run.add_argument("--choices", help="comma-separated labels")
    run.add_argument("--max-tokens", type=int)
    run.add_argument("--max-cost", type=float)
    run.add_argument(
        "--param",
        type=_param,
        action="append",
        default=[],
        help="extra body key=value (JSON values)",
    )
    run.add_argument("--dry-run", action="store_true", help="print the estimate and send nothing")
    run.add_argument(
        "--fresh", action="store_true", help="start a new job even if this one is stored"
    )
    run.add_argument(
        "--no-wait", action="store_true", help="submit and exit; collect later with 'wait'"
    )
    run.add_argument("--strict", action="store_true", help="exit 1 when any row has an error")
    run.add_argument("--poll-interval", type=float)

    sub.add_parser("jobs", help="list stored jobs")
    for name, text in (
        ("status", "show a job's progress"),
        ("wait", "wait for a job"),
        ("cancel", "cancel a job"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("job_id")
    result = sub.add_parser("result", help="write a finished job's joined result")
    result.add_argument("job_id")
    result.add_argument("--out", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (InputError, batchframe.ConfigurationError, batchframe.BudgetExceededError) as exc:
        print(f"batchframe: {exc}", file=sys.stderr)
        return 2
    except BatchframeError as exc:
        print(f"batchframe: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "jobs":
        with pd.option_context("display.width", 160, "display.max_colwidth", 60):
            print(batchframe.jobs(home=args.home).to_string(index=False))
        return 0
    if args.command == "run":
        return _run(args)
    job = batchframe.attach(args.job_id, home=args.home, progress="console")
    if args.command == "status":
        print(repr(job))
    elif args.command == "wait":
        job.wait()
        print(repr(job))
    elif args.command == "cancel":
        job.cancel()
        print(repr(job))
    elif args.command == "result":
        _write(job.result(), args.out)
        print(f"wrote {args.out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    frame = _read(args.input)
    params: dict[str, Any] = dict(args.param)
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    kwargs: dict[str, Any] = {
        "model": args.model,
        "provider": args.provider,
        "system": args.system,
        "output": args.output,
        "home": args.home,
        "max_cost": args.max_cost,
        "fresh": args.fresh,
        "poll_interval": args.poll_interval,
        "progress": "console",
        **params,
    }
    if args.choices:
        kwargs["choices"] = [c.strip() for c in args.choices.split(",") if c.strip()]
    if args.dry_run:
        print(frame.llm.batch(args.template, dry_run=True, **kwargs))
        return 0
    job = frame.llm.batch(args.template, wait=False, **kwargs)
    assert isinstance(job, batchframe.BatchJob)
    print(f"job {job.id}", file=sys.stderr)
    if args.no_wait:
        job.wait_submitted()
        print(f"submitted; collect it later with: batchframe wait {job.id}", file=sys.stderr)
        return 0
    out = job.result()
    if args.out is not None:
        _write(out, args.out)
        print(f"wrote {len(out):,} rows to {args.out}", file=sys.stderr)
    errors = int(out[f"{args.output}_error"].notna().sum())
    print(f"{len(out) - errors:,} rows answered, {errors:,} with errors", file=sys.stderr)
    return 1 if (args.strict and errors) else 0


if __name__ == "__main__":
    sys.exit(main())
