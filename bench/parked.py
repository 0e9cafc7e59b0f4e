"""What a parked run costs, and how fast it resumes after an approval.

    python -m bench.parked [--runs 200]

Starts one worker (prefork, concurrency 2) on PostgreSQL + Redis, parks ``runs`` runs on an
approval, then reports what they hold while parked (Redis keys and queued messages naming
them, busy workers) and, after approving them all, the resume latency: from the decision
(database clock) to the start of the next step (database clock). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis
from celery import Celery

from pipeline import approve, dispatch, get_run, run_history, run_steps, start_run
from pipeline.cluster import Cluster
from pipeline.migrate import upgrade
from pipeline.settings import get_settings, reload_settings
from tasks.config import celery_config
from tasks.dispatch import publisher
from tests.support.services import REDIS_HOST, REDIS_PORT, create_database, drop_database


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
    db_name = f"ravel_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(db_name)
    folder = Path(tempfile.mkdtemp(prefix="ravel-bench-"))
    env = {"RAVEL_HOME": str(folder), "RAVEL_DATABASE_URL": url,
           "RAVEL_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/14",
           "RAVEL_DEFAULT_QUEUE": f"bench-{uuid.uuid4().hex[:8]}", "RAVEL_WORKFLOWS": "bench.flows"}
    os.environ.update(env)
    reload_settings()
    upgrade(url)
    import bench.flows  # noqa: F401 - the workflows, for start_run

    app = Celery("bench")
    app.conf.update(celery_config(get_settings()))
    dispatch.set_dispatcher(publisher(app))
    client = redis.Redis.from_url(get_settings().broker_url)
    cluster = Cluster(env, folder)
    try:
        cluster.worker(concurrency=2)
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
    finally:
        cluster.stop_all()
        drop_database(db_name)


if __name__ == "__main__":
    main()
