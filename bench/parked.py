"""What a parked run costs, and how fast it resumes after an approval.

    python -m bench.parked [--runs 200]

Starts one worker (prefork, concurrency 2) on PostgreSQL + Redis, parks ``runs`` runs on an
approval, then reports what they hold while parked (Redis keys and queued messages naming
them, busy workers) and, after approving them all, the resume latency: from the decision
(database clock) to the start of the next step (database clock). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import redis

from bench.harness import worker_on_redis
from pipeline import approve, get_run, run_history, run_steps, start_run
from pipeline.settings import get_settings


def _wait(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise SystemExit("timed out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with worker_on_redis(concurrency=2) as (app, _cluster):
        client = redis.Redis.from_url(get_settings().broker_url)
        runs = [start_run("bench_parked", {}) for _ in range(args.runs)]
        _wait(lambda: all(get_run(r).status == "waiting" for r in runs), 300)
        time.sleep(1)  # let the last acks land
        names = [r.encode() for r in runs]
        held = [m for m in (*client.lrange(get_settings().default_queue, 0, -1),
                            *client.hvals("unacked"), *client.scan_iter(count=1000))
                if any(n in m for n in names)]
        active = app.control.inspect(timeout=2).active() or {}
        busy = sum(len(tasks) for tasks in active.values())
        print(f"parked runs: {len(runs)}")
        print(f"Redis messages or keys naming them: {len(held)}; worker tasks busy: {busy} "
              f"({len(active)} worker(s) answered)")

        for r in runs:
            approve(r, "bench")
        _wait(lambda: all(get_run(r).status == "succeeded" for r in runs), 300)
        latencies = []
        for r in runs:
            decided = next(e.at for e in run_history(r) if e.kind == "wait.approved")
            resumed = next(s.started_at for s in run_steps(r) if s.step == "finish")
            assert resumed is not None
            latencies.append((resumed - decided).total_seconds())
        latencies.sort()
        print(f"resume latency after approve: median {statistics.median(latencies) * 1000:.1f} "
              f"ms, p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:.1f} ms "
              f"(approvals sent back to back)")


if __name__ == "__main__":
    main()
