"""Scenario 5, parked runs: what they hold while they wait, and how fast a burst resumes.

    python -m bench parked [--scale tiny|small|full] [--rounds N]

One worker (prefork, ``-c 2``) parks ``runs`` runs on an approval (100,000 at full scale),
started from 4 threads. Then: the Redis keys and memory the broker's database holds beyond
what it held before (and whether any names a parked run), PostgreSQL bytes per parked run,
and the worker's CPU while they wait. Each round then approves 1,000 of them from 8 threads
(``approve()`` latency p50/p99, and the time until all 1,000 ran their next step) and,
alternating with it, sends 1,000 bare wake-ups from 8 threads (the time until all ran).
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.harness import Rig, rig
from bench.procstat import CpuMeter
from bench.runner import Result, Scale, alternate, percentile, ratios, rounds_for, scenario
from pipeline import approve, start_run

BURST = 1_000
THREADS = 8


def _redis_footprint(r: Rig) -> tuple[int, int, list[bytes]]:
    """Keys in the broker's database, their memory, and the keys themselves."""
    keys = list(r.broker.scan_iter(count=1000))
    memory = sum(int(r.broker.memory_usage(k) or 0) for k in keys)
    return len(keys), memory, keys


def _park(r: Rig, count: int) -> list[str]:
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: start_run("bench_parked", {}), range(count)))
    r.wait_runs("bench_parked", count, "waiting", timeout=3600, every=0.5)
    return runs


def _approve_burst(r: Rig, runs: list[str], latencies: list[float]) -> dict[str, float]:
    def one(run_id: str) -> None:
        start = time.perf_counter()
        approve(run_id, "bench")
        latencies.append(time.perf_counter() - start)

    before = int(r.sql("SELECT count(*) FROM ravel_runs WHERE status = 'succeeded'"))
    start = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, runs))
    r.wait_runs("bench_parked", before + len(runs), "succeeded")
    return {"all_resumed_s": time.perf_counter() - start}


def _bare_burst(r: Rig, count: int) -> dict[str, float]:
    key = f"bench:wake:{uuid.uuid4().hex}"
    start = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(
            pool.map(
                lambda _: r.app.send_task("bench.wake", args=(key,), queue=r.queue), range(count)
            )
        )
    while r.broker.llen(key) < count:
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    r.broker.delete(key)
    return {"all_resumed_s": elapsed}


@scenario("parked", 5, "Parked runs: what they hold; a burst of approvals")
def parked(scale: Scale) -> Result:
    """Footprint per parked run, then rounds of approval bursts against bare wake-ups."""
    count = scale.pick(100_000, 5_000, 300)
    rounds = rounds_for(scale, 3, 2, 1)
    burst = min(BURST, count // rounds)
    idle = scale.pick(10.0, 5.0, 1.0)
    result = Result(
        "parked",
        "parked runs",
        settings={
            "parked": count,
            "burst": burst,
            "threads": THREADS,
            "rounds": rounds,
            "worker": "prefork -c 2",
            "idle_window_s": idle,
        },
    )
    with rig(concurrency=2) as r:
        keys0, memory0, _ = _redis_footprint(r)
        bytes0 = r.db_bytes()
        started = time.perf_counter()
        runs = _park(r, count)
        result.settings["parking_s"] = round(time.perf_counter() - started, 1)
        time.sleep(1)  # the last acks land
        keys1, memory1, keys = _redis_footprint(r)
        names = {run.encode() for run in runs}
        naming = sum(1 for k in keys if any(n in k for n in names)) if count <= 5000 else None
        bytes1 = r.db_bytes()
        meter = CpuMeter(r.worker_pids)
        meter.start()
        time.sleep(idle)
        cpu = meter.stop()
        _footprint(
            result,
            count,
            (keys1 - keys0, memory1 - memory0, naming),
            (bytes1[0] - bytes0[0], bytes1[1] - bytes0[1]),
            cpu / idle,
        )
        latencies: list[float] = []
        batches = iter([runs[i * burst : (i + 1) * burst] for i in range(rounds)])
        got = alternate(
            rounds,
            {
                "bare": lambda: _bare_burst(r, burst),
                "ravel": lambda: _approve_burst(r, next(batches), latencies),
            },
        )
    _bursts(result, burst, got, latencies)
    return result


def _footprint(
    result: Result,
    count: int,
    redis_held: tuple[int, int, int | None],
    pg: tuple[int, int],
    cpu_share: float,
) -> None:
    keys, memory, naming = redis_held
    result.measure("redis_keys_added", "", [keys])
    result.measure("redis_memory_added_bytes", "B", [memory])
    result.row(
        f"{count:,} parked: Redis keys / memory added in the broker's DB",
        f"{keys} / {memory} B" + (f" ({naming} naming a run)" if naming is not None else ""),
        "0 keys",
        keys <= 0,
    )
    per_disk = result.measure("pg_disk_bytes_per_parked_run", "B", [pg[0] / count])
    per_rows = result.measure("pg_row_bytes_per_parked_run", "B", [pg[1] / count])
    result.row(
        "PostgreSQL bytes per parked run: on disk (indexes included) / rows",
        f"{per_disk.median:.0f} B / {per_rows.median:.0f} B",
        "<= 2 KB",
        per_disk.median <= 2048,
    )
    share = result.measure("worker_cpu_while_parked", "CPU s/s", [cpu_share])
    result.row("worker CPU while they wait", f"{share.median * 100:.2f} % of a core")


def _bursts(
    result: Result, burst: int, got: dict[str, dict[str, Any]], latencies: list[float]
) -> None:
    ms = [x * 1000 for x in latencies]
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    result.measure("approve_p50_ms", "ms", [p50])
    result.measure("approve_p99_ms", "ms", [p99])
    result.row(
        f"approve() from {THREADS} threads, p50 / p99",
        f"{p50:.1f} / {p99:.1f} ms",
        "p99 < 20 ms",
        p99 < 20,
    )
    bare = result.measure("bare_wakeups_s", "s", got["bare"]["all_resumed_s"])
    ravel = result.measure("all_resumed_s", "s", got["ravel"]["all_resumed_s"])
    ratio = result.measure(
        "resumed_over_bare",
        "x",
        ratios(got["ravel"]["all_resumed_s"], got["bare"]["all_resumed_s"]),
    )
    result.row(f"{burst:,} bare wake-ups, until all ran", bare.text())
    result.row(f"{burst:,} approvals, until all ran their next step", ravel.text())
    result.row("approvals / bare wake-ups", ratio.text(), "<= 1.3x", ratio.median <= 1.3)
