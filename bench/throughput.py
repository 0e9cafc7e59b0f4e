"""Scenario 2, throughput: many runs of 20 steps at once on one worker with ``-c 2``.

    python -m bench throughput [--scale tiny|small|full] [--rounds N]

Steps per second of Ravel runs versus bare Celery chains of the same length through the same
worker (and DBOS workflows on 2 threads, when installed), and the CPU seconds per 1,000 steps
of the worker (its main process and pool), the PostgreSQL backends of the benchmark's
database and the Redis server, read from ``/proc``.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.harness import Rig, rig
from bench.procstat import CpuMeter, redis_pid
from bench.runner import Result, Scale, alternate, ratios, rounds_for, scenario
from bench.side_dbos import DbosSystem, maybe_dbos
from tests.support.services import REDIS_PORT

STEPS = 20


def _metered(run: Callable[[], float], steps: int, meters: dict[str, CpuMeter]) -> dict[str, float]:
    """Steps/s of ``run`` and each meter's CPU seconds per 1,000 steps."""
    for meter in meters.values():
        meter.start()
    seconds = run()
    out = {"steps_per_s": steps / seconds}
    for name, meter in meters.items():
        out[f"cpu_{name}"] = meter.stop() / steps * 1000
    return out


def _systems(
    r: Rig, dbos: DbosSystem | None, runs: int
) -> dict[str, Callable[[], dict[str, float]]]:
    steps = runs * STEPS
    redis_pids = redis_pid(REDIS_PORT)
    celery = {
        "worker": CpuMeter(r.worker_pids),
        "pg": CpuMeter(r.pg_pids),
        "redis": CpuMeter(lambda: redis_pids),
    }
    systems = {
        "bare": lambda: _metered(lambda: r.bare_chains(runs, STEPS), steps, celery),
        "ravel": lambda: _metered(lambda: r.ravel_loops(runs, STEPS), steps, celery),
    }
    if dbos is not None:
        meters = {"worker": CpuMeter(lambda: dbos.pids()[:1]), "pg": CpuMeter(dbos.pids)}
        systems["dbos"] = lambda: _metered(lambda: dbos.runs(runs, STEPS), steps, meters)
    return systems


def _report(result: Result, runs: int, got: dict[str, dict[str, list[float]]]) -> None:
    label = {"bare": "bare Celery chains", "ravel": "Ravel", "dbos": "DBOS (2 threads)"}
    for name, figures in got.items():
        sps = result.measure(f"{name}_{runs}_steps_per_s", "steps/s", figures["steps_per_s"])
        cpu = {k[4:]: v for k, v in figures.items() if k.startswith("cpu_")}
        for part, samples in cpu.items():
            result.measure(f"{name}_{runs}_cpu_{part}_per_1000_steps", "s", samples)
        total = [sum(parts) for parts in zip(*cpu.values(), strict=True)]
        result.measure(f"{name}_{runs}_cpu_per_1000_steps", "s", total)
        split = ", ".join(f"{k} {sorted(v)[len(v) // 2]:.2f}" for k, v in cpu.items())
        result.row(
            f"{runs} runs x {STEPS} steps: {label[name]}",
            f"{sps.text(0)}; CPU s per 1,000 steps {sorted(total)[len(total) // 2]:.2f} ({split})",
        )
    ratio = result.measure(
        f"ravel_over_bare_{runs}",
        "x",
        ratios(got["ravel"]["steps_per_s"], got["bare"]["steps_per_s"]),
    )
    result.row(
        f"{runs} runs: Ravel / bare Celery steps/s", ratio.text(), ">= 0.8x", ratio.median >= 0.8
    )
    if "dbos" in got:
        over = result.measure(
            f"ravel_over_dbos_{runs}",
            "x",
            ratios(got["ravel"]["steps_per_s"], got["dbos"]["steps_per_s"]),
        )
        result.row(f"{runs} runs: Ravel / DBOS steps/s", over.text(), ">= 1x", over.median >= 1)
        cpu_ravel = [
            w + p for w, p in zip(got["ravel"]["cpu_worker"], got["ravel"]["cpu_pg"], strict=True)
        ]
        cpu_dbos = [
            w + p for w, p in zip(got["dbos"]["cpu_worker"], got["dbos"]["cpu_pg"], strict=True)
        ]
        share = result.measure(f"ravel_cpu_over_dbos_{runs}", "x", ratios(cpu_ravel, cpu_dbos))
        result.row(
            f"{runs} runs: CPU per step (worker + PostgreSQL), Ravel / DBOS",
            share.text(),
            "< 1x",
            share.median < 1,
        )


@scenario("throughput", 2, "Throughput: runs of 20 steps on -c 2 vs bare Celery chains")
def throughput(scale: Scale) -> Result:
    """Steps/s and CPU per 1,000 steps, for each size of the fleet."""
    sizes = scale.pick((50, 500), (50, 200), (10,))
    rounds = rounds_for(scale, 3, 2, 1)
    result = Result(
        "throughput",
        "throughput",
        settings={
            "sizes": list(sizes),
            "steps_per_run": STEPS,
            "rounds": rounds,
            "worker": "prefork -c 2, acks_late, prefetch 1",
            "dbos": "2 threads, its defaults",
        },
    )
    with rig(concurrency=2) as r, maybe_dbos() as dbos:
        r.bare_chains(4, 5), r.ravel_loops(4, 5)  # warm up both pool processes
        if dbos is not None:
            dbos.runs(4, 5)
        for runs in sizes:
            _report(result, runs, alternate(rounds, _systems(r, dbos, runs)))
    result.notes.append("Redis CPU is the whole server's, which other programs may share")
    return result
