"""The demo: label 40 support tickets through a batch API, on the bundled emulator by default.

    python -m batchframe.demo            # emulator unless OPENAI_API_KEY is set
    python -m batchframe.demo --emulator # always the emulator

With a real key it sends 40 small requests to gpt-4o-mini at batch prices (well under a cent;
the dry-run estimate is printed first) and waits for the batch, which can take a while.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from importlib import resources
from typing import Any

import pandas as pd

import batchframe

LABELS = ["billing", "technical", "account", "shipping", "feedback", "other"]
TEMPLATE = "Subject: {subject}\n\n{body}"
SYSTEM = "You label customer support tickets. Answer with the single best label."


def load_tickets() -> pd.DataFrame:
    with (resources.files("batchframe") / "data" / "tickets.csv").open("r", encoding="utf-8") as f:
        return pd.read_csv(f, index_col="ticket_id")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m batchframe.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--emulator", action="store_true", help="use the bundled emulator even with a key"
    )
    parser.add_argument("--model", default="gpt-4o-mini")
    args = parser.parse_args(argv)

    tickets = load_tickets()
    use_emulator = args.emulator or not os.environ.get("OPENAI_API_KEY")
    print(
        f"batchframe {batchframe.__version__}: "
        f"labelling {len(tickets)} support tickets with {args.model}"
    )

    estimate = tickets.llm.batch(
        TEMPLATE,
        model=args.model,
        system=SYSTEM,
        choices=LABELS,
        output="label",
        max_tokens=20,
        dry_run=True,
    )
    print(estimate, end="\n\n")

    if use_emulator:
        from batchframe.emulator import Emulator

        print("No OPENAI_API_KEY set (or --emulator): running on the bundled emulator.\n")
        with tempfile.TemporaryDirectory() as home, Emulator(processing_seconds=3.0) as emu:
            out = _run(
                tickets, args.model, client=emu.openai_client(), home=home, poll_interval=0.5
            )
    else:
        out = _run(tickets, args.model, client=None, home=None, poll_interval=None)
    _report(out)
    return 0


def _run(tickets: pd.DataFrame, model: str, **kwargs: Any) -> pd.DataFrame:
    job = tickets.llm.batch(
        TEMPLATE,
        model=model,
        system=SYSTEM,
        choices=LABELS,
        output="label",
        max_tokens=20,
        usage=True,
        wait=False,
        progress="console",
        **kwargs,
    )
    assert isinstance(job, batchframe.BatchJob)
    out = job.result()
    summary = job.summary()
    print(
        f"\njob {summary['job_id']}: {summary['succeeded']} answered, {summary['errored']} errors; "
        f"{summary['input_tokens']:,} input + {summary['output_tokens']:,} output tokens; "
        f"cost {_usd(summary['cost'])} (realtime would be {_usd(summary['realtime_cost'])})"
    )
    return out


def _report(out: pd.DataFrame) -> None:
    with pd.option_context(
        "display.width", 120, "display.max_colwidth", 40, "display.max_rows", 50
    ):
        print(out[["subject", "label", "label_error"]].to_string())
        print("\nlabels:")
        print(out["label"].value_counts(dropna=False).to_string())


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.6f}"


if __name__ == "__main__":
    sys.exit(main())
