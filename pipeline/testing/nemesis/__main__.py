"""``python -m pipeline.testing.nemesis --seed N --runs 200 --duration 300 --broker redis|amqp``.

Runs the seeded nemesis, checks the history and prints the report; exits 1 on a violation
(the report names the seed, the run ids and each run's history), 2 on a bad option.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from pipeline.testing.nemesis.schedule import ALL_KINDS


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.testing.nemesis",
        description="Seeded nemesis: concurrent agent runs under random faults, then a check "
        "of the whole history.",
    )
    parser.add_argument("--seed", type=int, help="default: drawn at random and printed")
    parser.add_argument("--runs", type=int, default=200, help="runs to start (default 200)")
    parser.add_argument(
        "--duration", type=float, default=300.0, help="seconds of faults (default 300)"
    )
    parser.add_argument("--broker", choices=("redis", "amqp"), default="redis")
    parser.add_argument(
        "--mutant",
        choices=("skip_fence", "double_effect"),
        help="run workers with a deliberate bug (the checker must fail)",
    )
    parser.add_argument("--workers", type=int, default=3, help="worker processes (default 3)")
    parser.add_argument("--concurrency", type=int, default=3, help="pool size of each worker")
    parser.add_argument(
        "--settle",
        type=float,
        default=240.0,
        help="seconds to wait for the runs to finish after the faults",
    )
    parser.add_argument(
        "--cancels",
        type=float,
        default=0.12,
        help="share of runs the driver cancels (default 0.12)",
    )
    parser.add_argument(
        "--faults", default=",".join(ALL_KINDS), help="comma-separated fault kinds (default: all)"
    )
    parser.add_argument(
        "--out", type=Path, help="folder for the run's logs (default .ravel/nemesis)"
    )
    args = parser.parse_args(argv)
    unknown = set(args.faults.split(",")) - set(ALL_KINDS) - {""}
    if unknown:
        parser.error(f"unknown fault kinds {sorted(unknown)}; choose from {', '.join(ALL_KINDS)}")
    if args.workers < 3 and not args.mutant:
        print("note: fewer than 3 workers", file=sys.stderr)
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run, check, report; the exit status says whether every invariant held."""
    args = parse(argv)
    # SIGTERM unwinds like Ctrl-C: workers, proxies and servers are stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    print(f"nemesis seed {seed} (replay with --seed {seed})", flush=True)
    from pipeline.testing.nemesis import harness
    from pipeline.testing.nemesis.report import render

    options = harness.Options(
        seed=seed,
        runs=args.runs,
        duration=args.duration,
        broker=args.broker,
        mutant=args.mutant,
        workers=args.workers,
        concurrency=args.concurrency,
        settle=args.settle,
        kinds=tuple(k for k in args.faults.split(",") if k),
        out=args.out,
        cancel_share=args.cancels,
    )
    outcome = harness.run(options)
    assert outcome.history is not None
    text = render(outcome, outcome.history, outcome.verdicts)
    (outcome.folder / "report.txt").write_text(text + "\n")
    print(text, flush=True)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
