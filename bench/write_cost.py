"""Write cost of a step early and late in a growing conversation, as a ratio (must be flat).

    python -m bench.write_cost [--steps 500] [--window 50]

Runs one workflow in-process on a fresh PostgreSQL database. Each step appends one ~1 KB
message to the run's conversation (as an agent turn does) and carries a small state. It
times the commit of the first ``window`` steps and of the last ``window`` steps, and counts
the bytes each commit sends (statement parameters). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from sqlalchemy import event

from bench.harness import fresh_database
from pipeline import Done, Next, StepContext, Workflow, start_run
from pipeline.store import get_db, steps
from pipeline.testing.inline import inline_dispatch

flow = Workflow("bench_chat", version=1)


@flow.step(start=True)
def turn(ctx: StepContext) -> Any:
    n = ctx.state.get("n", 0) + 1
    ctx.state["n"] = n
    ctx.add_message({"role": "assistant", "content": f"turn {n}: " + "x" * 1000})
    return Next("turn") if n < ctx.state["steps"] else Done(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--window", type=int, default=50)
    args = parser.parse_args()
    timings: list[float] = []
    sent: list[int] = []
    bytes_now = [0]

    def count(conn: Any, cursor: Any, sql: str, params: Any, *_: Any) -> None:
        bytes_now[0] += len(sql) + len(repr(params))

    original = steps.commit

    def timed_commit(*a: Any, **kw: Any) -> Any:
        bytes_now[0] = 0
        start = time.perf_counter()
        done = original(*a, **kw)
        timings.append(time.perf_counter() - start)
        sent.append(bytes_now[0])
        return done

    with fresh_database():
        event.listen(get_db().engine, "before_cursor_execute", count)
        steps.commit = timed_commit
        try:
            with inline_dispatch() as inline:
                start_run("bench_chat", {"steps": args.steps})
                inline.drain(limit=args.steps + 10)
        finally:
            steps.commit = original
    w = args.window
    early, late = statistics.median(timings[:w]), statistics.median(timings[-w:])
    print(f"steps: {len(timings)}, window: {w} (medians)")
    print(f"commit, steps 1-{w}:        {early * 1000:.2f} ms, {statistics.median(sent[:w]):.0f} B")
    print(f"commit, last {w} steps:     {late * 1000:.2f} ms, {statistics.median(sent[-w:]):.0f} B")
    print(f"ratio late / early:        {late / early:.2f}x")


if __name__ == "__main__":
    main()
