"""python -m batchframe.emulator: run the emulator in the foreground until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .emulator import Emulator
from .faults import FaultPlan

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _faults(text: str | None) -> FaultPlan | None:
    if not text:
        return None
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    return FaultPlan.from_json(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m batchframe.emulator",
        description="A local server speaking the OpenAI Batch and Anthropic Message Batches "
        "protocols, for rehearsing a pipeline offline.",
    )
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--processing-seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--faults", help="a FaultPlan as JSON, or @path to a JSON file", default=None
    )
    args = parser.parse_args(argv)
    try:
        plan = _faults(args.faults)
    except (ValueError, OSError) as exc:
        parser.error(f"--faults: {exc}")
    try:
        emu = Emulator(
            port=args.port, processing_seconds=args.processing_seconds, seed=args.seed, faults=plan
        )
    except ValueError as exc:
        parser.error(str(exc))
    # Both signals just end the wait below, whenever they arrive: a KeyboardInterrupt raised
    # between two statements could otherwise escape before the try block is entered.
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        try:
            emu.start()
        except OSError as exc:
            print(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"batchframe emulator listening on {emu.url}", flush=True)
        print(f"OPENAI_BASE_URL={emu.openai_base_url}", flush=True)
        print(f"ANTHROPIC_BASE_URL={emu.anthropic_base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
