"""Run every benchmark and report: ``python -m benchmarks`` (``--help`` for options).

Each measurement runs in its own process (benchmarks/worker.py): time, CPU time and peak
memory belong to that run alone. batchframe and the baseline alternate within each repeat,
so a machine busy with other work slows both alike; the table shows medians and the ratio of
the medians. Results go to benchmarks/results.md and benchmarks/results.json.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
PEERS = {
    "bespokelabs-curator": "benchmarks.peers.curator_job",
    "batchata": "benchmarks.peers.batchata_job",
}
STAGES = ("prepare", "tokens", "parse_join", "e2e", "scale")
STAGE_TITLES = {
    "prepare": "prepare (render + write JSONL)",
    "tokens": "token estimate (dry run)",
    "parse_join": "parse + join (output and error files)",
    "e2e": "end to end on the emulator",
}
# Targets at the largest size, as ratios batchframe / baseline in the same run.
TARGETS = {"prepare": (0.25, 1.0), "parse_join": (0.2, None)}
TOKENIZER_TARGET = 1.2
RUN_TIMEOUT = 1800


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- running one measurement -----------------------------------------------------------------


def _parse(stdout: str) -> dict[str, Any] | None:
    for line in stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            result: dict[str, Any] = json.loads(line[len("BENCH-RESULT ") :])
            return result
    return None


def _run(cmd: list[str], env: dict[str, str], timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s", "timed_out": timeout}
    result = _parse(done.stdout)
    if result is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-6:]
        return {"error": f"exit {done.returncode}: " + " | ".join(tail)}
    result["process_seconds"] = time.perf_counter() - started
    return result


def worker(
    stage: str,
    impl: str,
    rows: int,
    data_dir: Path,
    work: Path,
    base_url: str | None = None,
    chunk_rows: int | None = None,
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.worker",
        stage,
        impl,
        str(rows),
        "--data-dir",
        str(data_dir),
        "--work-dir",
        str(work),
    ]
    if base_url:
        cmd += ["--base-url", base_url]
    if chunk_rows:
        cmd += ["--chunk-rows", str(chunk_rows)]
    env = {**os.environ, "BATCHFRAME_PROGRESS": "off", "BENCH_DATA_DIR": str(data_dir)}
    return _run(cmd, env)


def peer(
    name: str,
    rows: int,
    base_url: str,
    work: Path,
    data_dir: Path,
    cache: Path,
    timeout: float = RUN_TIMEOUT,
) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_DATA_DIR": str(data_dir),
        "TIKTOKEN_CACHE_DIR": str(cache),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("OPENAI_BASE_URL", None)
    return _run(
        [str(PEERS_PYTHON), "-m", PEERS[name], str(rows), base_url, str(work)], env, timeout
    )


# -- the emulator and the peers ----------------------------------------------------------------


class EmulatorProcess:
    """``python -m batchframe.emulator`` with instant processing, in its own process."""

    def __enter__(self) -> EmulatorProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batchframe.emulator",
                "--port",
                "0",
                "--processing-seconds",
                "0",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("OPENAI_BASE_URL="):
                self.url = line.strip().split("=", 1)[1]
                break
        if not self.url:
            self.proc.kill()
            raise RuntimeError("the emulator did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def peer_versions() -> dict[str, dict[str, str]]:
    """Each peer's version, or why it is not available."""
    out: dict[str, dict[str, str]] = {}
    if not PEERS_PYTHON.exists():
        reason = "not installed: run `bash benchmarks/peers_setup.sh` (creates .venv-peers)"
        return {name: {"error": reason} for name in PEERS}
    for name in PEERS:
        package = "bespokelabs.curator" if name == "bespokelabs-curator" else name
        code = (
            f"import importlib.metadata as m, sys; import {package}; "
            f"print(m.version({name!r}), sys.version.split()[0])"
        )
        done = subprocess.run(
            [str(PEERS_PYTHON), "-c", code],
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "TELEMETRY_ENABLED": "false",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            },
            timeout=300,
        )
        if done.returncode == 0:
            version, python = done.stdout.split()[-2:]
            out[name] = {"version": version, "python": python}
        else:
            last = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
            out[name] = {"error": f"cannot import: {last}"}
    return out


def seed_tiktoken_cache(folder: Path) -> Path:
    """tiktoken's download cache, filled from the bpe-openai wheel (no network here).

    The peers count tokens with tiktoken; without this they would try to download the
    vocabularies and fail.
    """
    import importlib.util

    folder.mkdir(parents=True, exist_ok=True)
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        return folder
    base = Path(next(iter(spec.submodule_search_locations))) / "data"
    url = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
    for name in ("cl100k_base", "o200k_base"):
        target = folder / hashlib.sha1(url.format(name).encode()).hexdigest()
        if not target.exists():
            target.write_bytes(gzip.decompress((base / f"{name}.tiktoken.gz").read_bytes()))
    return folder


# -- checks that both sides did the same work ------------------------------------------------------


def _values(series: Any) -> list[Any]:
    """Values with every kind of missing (None, NaN, NA) as None."""
    import pandas as pd

    return [None if pd.isna(v) else v for v in series.tolist()]


def verify(rows: int, data_dir: Path, work: Path) -> dict[str, Any]:
    """Identical request bodies and identical joined values, batchframe against the baseline."""
    from . import data, stages

    frame = data.load_catalog(rows, data_dir)
    work.mkdir(parents=True, exist_ok=True)
    a, b = work / "verify-bf.jsonl", work / "verify-base.jsonl"
    stages.prepare_batchframe(frame, a)
    stages.prepare_baseline(frame, b)
    bodies_equal = stages.request_bodies(a) == stages.request_bodies(b)
    paths = data.result_paths(rows, data_dir)
    ours = stages.joined_batchframe(frame, paths, work / "verify-join")
    theirs = stages.joined_baseline(frame, paths)
    answers_equal = _values(ours["output"]) == _values(theirs["output"])
    errors_match = bool(
        (ours["output_error"].notna().to_numpy() == theirs["output_error"].notna().to_numpy()).all()
    )
    enc = stages.encoding()
    tokens_equal = stages.tokens_batchframe(frame) == stages.tokens_baseline(frame, enc)
    return {
        "rows": rows,
        "request_bodies_identical": bool(bodies_equal),
        "joined_answers_identical": bool(answers_equal),
        "error_rows_identical": bool(errors_match),
        "token_totals_identical": bool(tokens_equal),
    }


# -- the plan ---------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs: list[dict[str, Any]], metric: str, **where: Any) -> float | None:
    picked = [
        r.get(metric)
        for r in runs
        if all(r.get(k) == v for k, v in where.items()) and "error" not in r
    ]
    return _median([v for v in picked if v is not None])


def errors_of(runs: list[dict[str, Any]], **where: Any) -> list[str]:
    return [
        r["error"] for r in runs if all(r.get(k) == v for k, v in where.items()) and "error" in r
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--sizes",
        default="100000,1000000",
        help="rows per stage, comma separated (default 1e5 and 1e6)",
    )
    parser.add_argument("--e2e-rows", type=int, default=100_000)
    parser.add_argument(
        "--scale-rows",
        type=int,
        default=10_000_000,
        help="rows for the scale stage: prepare chunked vs in one piece (default 1e7)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--stages", default=",".join(STAGES), help=f"comma separated, of {', '.join(STAGES)}"
    )
    parser.add_argument("--no-peers", action="store_true", help="skip the peer libraries")
    parser.add_argument(
        "--peer-repeats", type=int, default=1, help="end-to-end runs per peer (default 1)"
    )
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=900,
        help="seconds a peer's end-to-end run may take before it is reported as unfinished",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1e4 and 1e5 rows, e2e at 1e4, one repeat (a smoke run)",
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE,
        help="folder for results.md and results.json (default benchmarks/)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.e2e_rows, args.repeats = "10000,100000", 10_000, 1
        args.scale_rows = 200_000
    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    wanted = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(wanted) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    from . import data, stages

    data_dir = args.data_dir or data.default_dir()
    scratch = Path(tempfile.mkdtemp(prefix="bench-run-"))
    log(f"inputs in {data_dir}, scratch in {scratch}")
    for n in sizes:
        log(f"preparing inputs for {n:,} rows ...")
        data.catalog_path(n, data_dir)
        if "parse_join" in wanted:
            data.result_paths(n, data_dir)
    if "e2e" in wanted:
        data.catalog_path(args.e2e_rows, data_dir)
    if "scale" in wanted:
        log(f"preparing inputs for {args.scale_rows:,} rows ...")
        data.catalog_path(args.scale_rows, data_dir)

    runs: list[dict[str, Any]] = []
    counter = 0

    def record(result: dict[str, Any], **labels: Any) -> None:
        result.update(labels)
        runs.append(result)
        shown = (
            f"{result['seconds']:.2f} s, {result['peak_mb']:.0f} MB"
            if "seconds" in result
            else result["error"][:200]
        )
        log(f"  {labels} -> {shown}")

    for repeat in range(args.repeats):
        for n in sizes:
            for stage in [s for s in wanted if s not in ("e2e", "scale")]:
                impls = ["batchframe", "baseline"]
                if (repeat + counter) % 2:
                    impls.reverse()
                counter += 1
                for impl in impls:
                    work = scratch / f"{stage}-{impl}-{n}-{repeat}"
                    record(
                        worker(stage, impl, n, data_dir, work),
                        stage=stage,
                        impl=impl,
                        rows=n,
                        repeat=repeat,
                    )
                    _clean(work)
                if stage == "tokens":
                    for extra in ("tokens_count", "tokenizer_batch"):
                        work = scratch / f"{extra}-{n}-{repeat}"
                        record(
                            worker(extra, "batchframe", n, data_dir, work),
                            stage=extra,
                            impl="batchframe" if extra == "tokens_count" else "tiktoken",
                            rows=n,
                            repeat=repeat,
                        )
                        _clean(work)

    if "scale" in wanted:
        # Once: at 1e7 rows a run takes minutes. Chunked (the default) against one chunk.
        for mode, chunk in (("chunked", None), ("one chunk", args.scale_rows)):
            work = scratch / f"scale-{args.scale_rows}-{mode.replace(' ', '-')}"
            result = worker(
                "prepare", "batchframe", args.scale_rows, data_dir, work, chunk_rows=chunk
            )
            record(result, stage="scale", impl=mode, rows=args.scale_rows, repeat=0)
            _clean(work)

    peers = peer_versions() if "e2e" in wanted and not args.no_peers else {}
    if "e2e" in wanted:
        cache = seed_tiktoken_cache(scratch / "tiktoken-cache")
        contenders = ["batchframe", "baseline"] + [p for p in peers if "error" not in peers[p]]
        for repeat in range(max(args.repeats, args.peer_repeats)):
            order = contenders[repeat % len(contenders) :] + contenders[: repeat % len(contenders)]
            for impl in order:
                if repeat >= (args.peer_repeats if impl in PEERS else args.repeats):
                    continue
                work = scratch / f"e2e-{impl}-{repeat}"
                with EmulatorProcess() as emu:  # a fresh emulator for every run
                    if impl in PEERS:
                        result = peer(
                            impl, args.e2e_rows, emu.url, work, data_dir, cache, args.peer_timeout
                        )
                    else:
                        result = worker("e2e", impl, args.e2e_rows, data_dir, work, emu.url)
                record(result, stage="e2e", impl=impl, rows=args.e2e_rows, repeat=repeat)
                _clean(work)

    log("checking that both sides produce the same requests and joined values ...")
    checks = verify(min(sizes), data_dir, scratch / "verify")
    report = build_report(
        runs, sizes, wanted, args.e2e_rows, peers, checks, stages.environment(), args
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report["json"], indent=2) + "\n")
    (args.out / "results.md").write_text(report["markdown"])
    print(report["markdown"])
    _clean(scratch)
    return 0


def _clean(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# -- the report ----------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def build_report(
    runs: list[dict[str, Any]],
    sizes: list[int],
    wanted: list[str],
    e2e_rows: int,
    peers: dict[str, dict[str, str]],
    checks: dict[str, Any],
    env: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    largest = max(sizes)
    table: list[dict[str, Any]] = []
    lines = [
        "# batchframe benchmarks",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')} on {env['cpus']} CPUs ({env['machine']}), "
        f"{args.repeats} repeat(s), medians. Versions: "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + ".",
        "Each figure comes from its own process; batchframe and the baseline alternate within "
        "each repeat. Ratio = batchframe / baseline (below 1 is better). Peak = the process's "
        "resident-memory high-water mark during the stage (frame and libraries included); "
        "extra = that peak minus the resident memory when the stage began.",
        "",
        "| stage | rows | batchframe s | baseline s | time ratio | batchframe peak MB "
        "(extra) | baseline peak MB (extra) | peak ratio | target (at "
        f"{largest:,}) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for stage in [s for s in wanted if s not in ("e2e", "scale")]:
        for n in sizes:
            bf = {
                m: summarise(runs, m, stage=stage, impl="batchframe", rows=n)
                for m in ("seconds", "cpu_seconds", "peak_mb", "stage_peak_mb")
            }
            base = {
                m: summarise(runs, m, stage=stage, impl="baseline", rows=n)
                for m in ("seconds", "cpu_seconds", "peak_mb", "stage_peak_mb")
            }
            time_ratio = _ratio(bf["seconds"], base["seconds"])
            peak_ratio = _ratio(bf["peak_mb"], base["peak_mb"])
            target = ""
            if stage in TARGETS and n == largest:
                t_time, t_mem = TARGETS[stage]
                met = (
                    time_ratio is not None
                    and time_ratio <= t_time
                    and (t_mem is None or (peak_ratio is not None and peak_ratio <= t_mem))
                )
                target = f"time <= {t_time}x" + (f", peak <= {t_mem}x" if t_mem else "")
                target += " — met" if met else " — NOT met"
            row = {
                "stage": stage,
                "rows": n,
                "batchframe": bf,
                "baseline": base,
                "time_ratio": time_ratio,
                "peak_ratio": peak_ratio,
                "target": target,
                "errors": errors_of(runs, stage=stage, rows=n),
            }
            table.append(row)
            lines.append(
                f"| {STAGE_TITLES[stage]} | {n:,} | {_fmt(bf['seconds'])} | "
                f"{_fmt(base['seconds'])} | **{_fmt(time_ratio)}x** | "
                f"{_fmt(bf['peak_mb'], digits=0)} ({_fmt(bf['stage_peak_mb'], digits=0)}) | "
                f"{_fmt(base['peak_mb'], digits=0)} ({_fmt(base['stage_peak_mb'], digits=0)}) | "
                f"{_fmt(peak_ratio)}x | {target} |"
            )
    if "tokens" in wanted:
        lines += [
            "",
            "Token counting against the tokenizer's own batch call, both on the deduplicated "
            "prompts (tiktoken `encode_ordinary_batch`, its default 8 threads; batchframe's "
            "counter with the framing of each message):",
            "",
            "| rows | batchframe counter s | tiktoken batch s | ratio | target |",
            "| ---: | ---: | ---: | ---: | --- |",
        ]
        for n in sizes:
            ours = summarise(runs, "seconds", stage="tokens_count", rows=n)
            theirs = summarise(runs, "seconds", stage="tokenizer_batch", rows=n)
            ratio = _ratio(ours, theirs)
            target = ""
            if n == largest:
                met = ratio is not None and ratio <= TOKENIZER_TARGET
                target = f"<= {TOKENIZER_TARGET}x — " + ("met" if met else "NOT met")
            table.append(
                {
                    "stage": "tokens_vs_tokenizer",
                    "rows": n,
                    "batchframe_seconds": ours,
                    "tokenizer_seconds": theirs,
                    "ratio": ratio,
                    "target": target,
                }
            )
            lines.append(
                f"| {n:,} | {_fmt(ours)} | {_fmt(theirs)} | **{_fmt(ratio)}x** | {target} |"
            )
    if "scale" in wanted:
        lines += _scale_section(runs, args.scale_rows, table)
    if "e2e" in wanted:
        lines += [
            "",
            f"End to end at {e2e_rows:,} rows on the emulator (instant processing, a fresh "
            "emulator process per run): from the frame to the frame with answers joined on. "
            "Local overhead is the client process's CPU time; wall time also contains each "
            "library's polling waits.",
            "",
            "| implementation | version | local overhead (CPU s) | wall s | peak MB | answered "
            "| notes |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        e2e: dict[str, Any] = {}
        notes = {
            "batchframe": "df.llm.batch(...), poll_interval=0.05",
            "baseline": "openai SDK recipe: JSONL per 50k, upload, create, poll 0.05 s, "
            "json.loads + dict join",
            "bespokelabs-curator": "LLM(batch=True, backend_params={base_url, "
            "batch_check_interval: 1}); HF Dataset in, joined by sku",
            "batchata": "Batch(items_per_batch=50_000); OPENAI_BASE_URL; polls every 5 s "
            "(fixed); model gpt-4o-mini-2024-07-18 (it accepts only listed snapshots)",
        }
        names = ["batchframe", "baseline", *PEERS]
        versions = {
            "batchframe": env["versions"].get("batchframe", ""),
            "baseline": f"openai {env['versions'].get('openai', '')}",
        }
        for name in names:
            info = peers.get(name, {})
            version = versions.get(name) or info.get("version", "")
            if name in PEERS and (not peers or "error" in info):
                why = info.get("error", "skipped (--no-peers)")
                lines.append(f"| {name} | — | n/a | n/a | n/a | n/a | {why} |")
                e2e[name] = {"error": why}
                continue
            stats = {
                m: summarise(runs, m, stage="e2e", impl=name)
                for m in ("cpu_seconds", "seconds", "peak_mb")
            }
            answered = [
                r.get("extra", {}).get("answered")
                for r in runs
                if r.get("stage") == "e2e" and r.get("impl") == name and "extra" in r
            ]
            errs = errors_of(runs, stage="e2e", impl=name)
            timeouts = [
                r["timed_out"]
                for r in runs
                if r.get("stage") == "e2e" and r.get("impl") == name and "timed_out" in r
            ]
            note = notes[name] + (f"; failures: {errs[0][:160]}" if errs else "")
            cpu, wall = _fmt(stats["cpu_seconds"]), _fmt(stats["seconds"])
            if stats["seconds"] is None and timeouts:
                # Unfinished: all we know is that it ran longer than the limit.
                cpu = wall = f"> {min(timeouts):,.0f}"
                stats["unfinished_after"] = min(timeouts)
            e2e[name] = {**stats, "version": version, "answered": answered, "errors": errs}
            lines.append(
                f"| {name} | {version} | **{cpu}** | {wall} | "
                f"{_fmt(stats['peak_mb'], digits=0)} | "
                f"{answered[0] if answered else 'n/a'} | {note} |"
            )
        ours = e2e["batchframe"].get("cpu_seconds")
        ours_wall = e2e["batchframe"].get("seconds")
        verdicts = []
        for name, result in e2e.items():
            if name not in PEERS or "error" in result:
                continue
            if result.get("cpu_seconds") is not None:
                verdicts.append(ours is not None and ours < result["cpu_seconds"])
            elif result.get("unfinished_after") is not None:
                limit = result["unfinished_after"]
                verdicts.append(ours is not None and ours_wall is not None and ours_wall < limit)
        if verdicts:
            verdict = "met" if all(verdicts) else "NOT met"
            lines += ["", f"Target (batchframe's local overhead below every peer's): {verdict}."]
        table.append({"stage": "e2e", "rows": e2e_rows, "results": e2e})
    lines += [
        "",
        f"Checks at {checks['rows']:,} rows (outside the timings): request bodies identical: "
        f"{_yes(checks['request_bodies_identical'])}; joined answers identical: "
        f"{_yes(checks['joined_answers_identical'])}; error rows identical: "
        f"{_yes(checks['error_rows_identical'])}; token totals identical: "
        f"{_yes(checks['token_totals_identical'])}.",
        "",
        "Reproduce: `bash benchmarks/peers_setup.sh` (once), then `.venv/bin/python -m "
        "benchmarks`. See docs/benchmarks.md.",
        "",
    ]
    payload = {
        "environment": env,
        "peers": peers,
        "checks": checks,
        "summary": table,
        "runs": runs,
        "settings": {
            "sizes": sizes,
            "repeats": args.repeats,
            "e2e_rows": e2e_rows,
            "stages": wanted,
        },
    }
    return {"markdown": "\n".join(lines), "json": payload}


def _scale_section(runs: list[dict[str, Any]], rows: int, table: list[dict[str, Any]]) -> list[str]:
    """Prepare (to_jsonl) at scale: chunked rendering with spilled requests, against the
    whole frame rendered in one chunk, in the same run."""
    lines = [
        "",
        f"Scale: `to_jsonl` of {rows:,} catalog rows, chunked (the default, "
        "1,048,576 rows a chunk, requests spilled to disk) against one chunk "
        "(`BATCHFRAME_CHUNK_ROWS` = the row count). Extra = peak minus the resident memory "
        "before the stage, which already holds the frame.",
        "",
        "| mode | rows | s | peak MB | extra MB | JSONL MB | extra / JSONL |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode in ("chunked", "one chunk"):
        found = [r for r in runs if r.get("stage") == "scale" and r.get("impl") == mode]
        if not found or "seconds" not in found[0]:
            why = found[0].get("error", "not run") if found else "not run"
            lines.append(f"| {mode} | {rows:,} | n/a | n/a | n/a | n/a | {why[:120]} |")
            continue
        r = found[0]
        jsonl_mb = r.get("extra", {}).get("bytes", 0) / 1e6
        share = _ratio(r["stage_peak_mb"], jsonl_mb)
        table.append({"stage": "scale", "mode": mode, "rows": rows, **r})
        lines.append(
            f"| {mode} | {rows:,} | {_fmt(r['seconds'])} | {_fmt(r['peak_mb'], digits=0)} | "
            f"{_fmt(r['stage_peak_mb'], digits=0)} | {_fmt(jsonl_mb, digits=0)} | "
            f"{_fmt(share)}x |"
        )
    return lines


def _yes(value: bool) -> str:
    return "yes" if value else "**NO**"
