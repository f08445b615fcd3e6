"""The benchmark job through batchata (run in .venv-peers).

``.venv-peers/bin/python -m benchmarks.peers.batchata_job ROWS BASE_URL WORK``

batchata builds its own ``OpenAI()`` client, which reads OPENAI_BASE_URL, so the job runs
against the same emulator. It polls every 5 seconds (fixed), so its wall time is dominated by
waiting; its local overhead is its CPU time. It accepts only the model snapshots it lists.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    rows, base_url, work = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(OPENAI_API_KEY="bench", OPENAI_BASE_URL=base_url)
    from batchata import Batch

    from benchmarks import data
    from benchmarks.measure import run_and_report

    frame = data.load_catalog(rows, Path(os.environ["BENCH_DATA_DIR"]))

    def job() -> dict[str, object]:
        batch = Batch(
            results_dir=str(work / "results"), max_parallel_batches=2, items_per_batch=50_000
        ).set_default_params(
            model="gpt-4o-mini-2024-07-18", temperature=0, max_tokens=data.MAX_TOKENS
        )
        for row in frame.to_dict("records"):
            user = data.TEMPLATE.format(**row)
            batch.add_job(
                messages=[
                    {"role": "system", "content": data.SYSTEM},
                    {"role": "user", "content": user},
                ]
            )
        run = batch.run()
        by_id = {r.job_id: r.raw_response for r in run.results()["completed"]}
        out = frame.copy()
        out["output"] = [by_id.get(job.id) for job in batch.jobs]
        return {"answered": int(out["output"].notna().sum()), "rows": len(out)}

    run_and_report(job)


if __name__ == "__main__":
    main()
