"""``python -m bench [scenario ...] [--scale tiny|small|full] [--rounds N]``: run scenarios.

Without scenario names every scenario runs (``make bench``). Prints a table per scenario
and at the end, and writes ``bench/results/<date>.json``.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from pathlib import Path

from bench import runner

#: The scenario modules, in the issue's order (each registers itself on import).
MODULES = (
    "step_overhead",
    "throughput",
    "start_rate",
    "agent_turns",
    "parked",
    "recovery",
    "memory",
)


def main(argv: list[str] | None = None) -> int:
    """Run the named scenarios (all by default); return the exit status."""
    for module in MODULES:
        importlib.import_module(f"bench.{module}")
    keys = sorted(runner.SCENARIOS, key=lambda k: runner.SCENARIOS[k].number)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "scenarios", nargs="*", metavar="scenario", help=f"any of: {', '.join(keys)} (default: all)"
    )
    parser.add_argument(
        "--scale",
        choices=[s.value for s in runner.Scale],
        default="full",
        help="full: the issue's sizes (default); small, tiny: quick checks",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds per scenario (default: per scenario and scale)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=runner.RESULTS,
        help="folder of the JSON results (default: bench/results)",
    )
    args = parser.parse_args(argv)
    unknown = [k for k in args.scenarios if k not in runner.SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(keys)}")
    runner.OPTIONS["rounds"] = args.rounds
    # SIGTERM unwinds like Ctrl-C: workers stopped, benchmark databases dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    path = runner.result_path(args.out)
    report = runner.run(args.scenarios or keys, runner.Scale(args.scale), path)
    print(
        f"\n# Ravel benchmark, {report['date']}, scale {report['scale']}, "
        f"commit {report['commit']}\n"
    )
    print(runner.table(report["scenarios"]))
    print(f"\nwritten: {path}")
    return 1 if any(e.get("failed") for e in report["scenarios"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
