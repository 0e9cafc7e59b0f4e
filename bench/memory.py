"""Scenario 8, memory: a worker's resident memory after 1,000 and after 50,000 steps.

    python -m bench memory [--scale tiny|small|full]

One worker (prefork, ``-c 1``) runs trivial loop runs, 10 at a time, 100 steps each. Its
pool process's RSS is read after the first 1,000 steps and again at the end; growth per step
beyond noise would be a leak.
"""

from __future__ import annotations

from bench.harness import Rig, rig
from bench.procstat import rss_mib
from bench.runner import Result, Scale, scenario

STEPS_PER_RUN = 100
AT_ONCE = 10


def _pool_rss(r: Rig) -> tuple[float, float]:
    """RSS in MiB of the worker's main process and of its (one) pool process."""
    worker = r.workers[0]
    children = [p for p in r.worker_pids() if p != worker.pid]
    return rss_mib(worker.pid), max((rss_mib(p) for p in children), default=0.0)


def _steps(r: Rig, steps: int) -> None:
    batch = AT_ONCE * STEPS_PER_RUN
    for _ in range(max(1, steps // batch)):
        r.ravel_loops(AT_ONCE, STEPS_PER_RUN)


@scenario("memory", 8, "Memory: worker RSS after 1,000 and 50,000 steps")
def memory(scale: Scale) -> Result:
    """RSS of the pool process at both points, and the growth per 1,000 steps between."""
    total = scale.pick(50_000, 10_000, 2_000)
    result = Result(
        "memory",
        "memory",
        settings={
            "steps": [1_000, total],
            "worker": "prefork -c 1",
            "runs": f"{AT_ONCE} at a time x {STEPS_PER_RUN} steps",
        },
    )
    with rig(concurrency=1) as r:
        _steps(r, 1_000)
        main1, pool1 = _pool_rss(r)
        _steps(r, total - 1_000)
        main2, pool2 = _pool_rss(r)
    result.measure("pool_rss_1000_mib", "MiB", [pool1])
    result.measure(f"pool_rss_{total}_mib", "MiB", [pool2])
    result.measure("main_rss_mib", "MiB", [main1, main2])
    growth = result.measure(
        "pool_growth_kib_per_1000_steps", "KiB", [(pool2 - pool1) * 1024 / (total - 1_000) * 1000]
    )
    result.row(
        f"pool process RSS after 1,000 / {total:,} steps",
        f"{pool1:.1f} / {pool2:.1f} MiB (main process {main1:.1f} / {main2:.1f} MiB)",
    )
    result.row("growth per 1,000 steps", growth.text(1), "noise (< 10 KiB)", growth.median < 10)
    return result
