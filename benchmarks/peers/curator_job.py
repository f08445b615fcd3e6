"""The benchmark job through bespokelabs-curator (run in .venv-peers).

``.venv-peers/bin/python -m benchmarks.peers.curator_job ROWS BASE_URL WORK``

Curator's OpenAI batch backend accepts a base URL, so the job runs against the same emulator
as batchframe's. Measured: from the frame to a frame with the answers joined on, the way its
documentation shows it (an HF Dataset in, ``prompt``/``parse`` on an ``LLM`` subclass).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    rows, base_url, work = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        OPENAI_API_KEY="bench",
        CURATOR_CACHE_DIR=str(work / "curator-cache"),
        CURATOR_DISABLE_RICH_DISPLAY="1",
        CURATOR_DISABLE_CACHE="1",
        TELEMETRY_ENABLED="false",
        HF_DATASETS_OFFLINE="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_CACHE=str(work / "hf-cache"),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    import openai.resources.files as files
    from bespokelabs import curator
    from datasets import Dataset, disable_progress_bars

    from benchmarks import data
    from benchmarks.measure import run_and_report

    disable_progress_bars()
    # Curator uploads the batch file as bare bytes, which the SDK names "upload"; the emulator
    # (like the service, per providers.md) refuses a batch file not named *.jsonl. Give the
    # bytes a name; nothing else about its requests changes.
    create = files.AsyncFiles.create

    async def named_create(self, *, file, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(file, bytes | bytearray):
            file = ("batch.jsonl", bytes(file))
        return await create(self, file=file, **kwargs)

    files.AsyncFiles.create = named_create  # type: ignore[method-assign]
    frame = data.load_catalog(rows, Path(os.environ["BENCH_DATA_DIR"]))

    class Catalog(curator.LLM):
        def prompt(self, row):  # type: ignore[no-untyped-def]
            user = data.TEMPLATE.format(**{k: row[k] for k in data.FIELDS})
            return [{"role": "system", "content": data.SYSTEM}, {"role": "user", "content": user}]

        def parse(self, row, response):  # type: ignore[no-untyped-def]
            return {"sku": row["sku"], "output": response}

    llm = Catalog(
        model_name=data.MODEL,
        batch=True,
        backend="openai",
        backend_params={
            "base_url": base_url,
            "api_key": "bench",
            "batch_size": 50_000,
            "batch_check_interval": 1,
            "max_retries": 2,
        },
        generation_params={"max_tokens": data.MAX_TOKENS, "temperature": 0},
    )

    def job() -> dict[str, object]:
        dataset = Dataset.from_pandas(frame, preserve_index=False)
        response = llm(dataset)
        answers = response.dataset.to_pandas().set_index("sku")["output"]
        out = frame.copy()
        out["output"] = out["sku"].map(answers)
        return {"answered": int(out["output"].notna().sum()), "rows": len(out)}

    run_and_report(job)


if __name__ == "__main__":
    main()
