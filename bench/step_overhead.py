"""Per-step overhead of Ravel over a bare Celery hop, as a ratio measured in one run.

    python -m bench.step_overhead [--hops 300] [--runs 8]

Needs PostgreSQL and Redis (the test defaults: 127.0.0.1:5432 trust, 127.0.0.1:6379). It
creates its own database and queue, starts one worker process (prefork, concurrency 1), and
measures, alternating the two so drift hits both alike:

* bare hop: a Celery task with acks_late that publishes the next one, N times;
* Ravel step: a workflow step that returns ``Next`` N times (claim, work, fenced commit,
  publish) through the same worker and broker.

It prints milliseconds per hop and the ratio; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable

import redis
from celery import Celery

from bench.harness import worker_on_redis
from pipeline import get_run, start_run
from pipeline.settings import get_settings


def _redis_commands() -> int:
    """Commands the broker has processed so far (INFO stats)."""
    info = redis.Redis.from_url(get_settings().broker_url).info("stats")
    return int(info["total_commands_processed"])


def _commands_per_hop(run: Callable[[], float], hops: int) -> float:
    before = _redis_commands()
    run()
    return (_redis_commands() - before) / hops


def _bare(app: Celery, hops: int) -> float:
    key = f"bench:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(get_settings().broker_url)
    start = time.perf_counter()
    app.send_task("bench.hop", args=(hops, key), queue=get_settings().default_queue)
    client.blpop([key], timeout=300)
    elapsed = time.perf_counter() - start
    client.delete(key)
    return elapsed / hops


def _ravel(hops: int) -> float:
    start = time.perf_counter()
    run_id = start_run("bench_loop", {"left": hops})
    while get_run(run_id).status != "succeeded":
        time.sleep(0.05)  # rare polls: the probe must not compete with the worker
    return (time.perf_counter() - start) / hops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hops", type=int, default=300)
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()

    with worker_on_redis(concurrency=1) as (app, _cluster):
        _bare(app, 20), _ravel(20)  # warm up both paths
        bare, ravel = [], []
        for _ in range(args.runs):
            bare.append(_bare(app, args.hops))
            ravel.append(_ravel(args.hops))
        b, r = statistics.median(bare), statistics.median(ravel)
        # Includes the worker's own polling and events, so it is an upper bound per hop.
        cb = _commands_per_hop(lambda: _bare(app, args.hops), args.hops)
        cr = _commands_per_hop(lambda: _ravel(args.hops), args.hops)
        print(f"hops per run: {args.hops}, runs: {args.runs} (medians)")
        print(f"bare Celery hop (acks_late):  {b * 1000:.2f} ms, {cb:.1f} Redis commands")
        print(f"Ravel step (claim+commit):    {r * 1000:.2f} ms, {cr:.1f} Redis commands")
        print(f"ratio Ravel / bare:           {r / b:.2f}x")


if __name__ == "__main__":
    main()
