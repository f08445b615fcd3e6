"""One measurement in a fresh process: ``python -m benchmarks.worker STAGE IMPL ROWS ...``.

Loads its inputs, then measures exactly one stage for one implementation and prints a
``BENCH-RESULT {json}`` line (see measure.py). One process per measurement keeps peak memory
figures separate and the runs independent.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from . import data, stages
from .measure import run_and_report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "stage",
        choices=["prepare", "tokens", "tokens_count", "tokenizer_batch", "parse_join", "e2e"],
    )
    parser.add_argument("impl", choices=["batchframe", "baseline"])
    parser.add_argument("rows", type=int)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--base-url", default=None)
    parser.add_argument(
        "--chunk-rows", type=int, default=None, help="BATCHFRAME_CHUNK_ROWS for this run"
    )
    args = parser.parse_args()
    if args.chunk_rows:
        os.environ["BATCHFRAME_CHUNK_ROWS"] = str(args.chunk_rows)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("BATCHFRAME_PROGRESS", "off")

    frame = data.load_catalog(args.rows, args.data_dir)
    if args.impl == "batchframe":
        # Imports are a one-off per session, not part of any stage.
        import batchframe
        import batchframe.join
        import batchframe.providers.openai
    job: Any
    if args.stage == "prepare":
        path = work / f"{args.impl}.jsonl"
        fn = stages.prepare_batchframe if args.impl == "batchframe" else stages.prepare_baseline
        job = lambda: fn(frame, path)  # noqa: E731
    elif args.stage == "tokens":
        enc = stages.encoding()
        enc.encode_ordinary("warm up")
        if args.impl == "batchframe":
            import batchframe

            job = lambda: stages.tokens_batchframe(frame)  # noqa: E731
        else:
            job = lambda: stages.tokens_baseline(frame, enc)  # noqa: E731
    elif args.stage in ("tokens_count", "tokenizer_batch"):
        # Both on the same deduplicated texts: the user prompts, and the shared system prompt.
        enc = stages.encoding()
        enc.encode_ordinary("warm up")
        unique = list(dict.fromkeys(stages.rendered_prompts(frame)))
        if args.stage == "tokens_count":
            import pyarrow as pa

            messages = [("system", data.SYSTEM), ("user", pa.array(unique, pa.large_string()))]
            job = lambda: stages.tokens_count_only(messages)  # noqa: E731
        else:
            job = lambda: stages.tokens_tokenizer_batch(enc, unique)  # noqa: E731
    elif args.stage == "parse_join":
        paths = data.result_paths(args.rows, args.data_dir)
        if args.impl == "batchframe":
            import batchframe.join
            import batchframe.providers.openai

            job = lambda: stages.parse_join_batchframe(frame, paths, work)  # noqa: E731
        else:
            job = lambda: stages.parse_join_baseline(frame, paths)  # noqa: E731
    else:  # e2e
        assert args.base_url, "e2e needs --base-url"
        import openai  # noqa: F401

        if args.impl == "batchframe":
            import batchframe  # noqa: F401

            job = lambda: stages.e2e_batchframe(frame, args.base_url, work / "home")  # noqa: E731
        else:
            job = lambda: stages.e2e_baseline(frame, args.base_url, work)  # noqa: E731
    run_and_report(job)


if __name__ == "__main__":
    main()
