"""Scenario 1, step overhead: one run of trivial steps versus the bare Celery hop.

    python -m bench step_overhead [--scale tiny|small|full] [--rounds N]

One worker (prefork, ``-c 1``) serves both: a bare task with ``acks_late`` that publishes the
next one, and a Ravel workflow step that returns ``Next`` (claim, work, fenced commit,
publish). DBOS, when installed, runs a workflow of the same number of steps in this process.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from bench.harness import Rig, rig
from bench.runner import Result, Scale, alternate, ratios, rounds_for, scenario
from bench.side_dbos import maybe_dbos


def _commands(broker: redis.Redis, run: Callable[[], object], hops: int) -> float:
    """Redis commands per hop while ``run`` runs (the worker's own polling included)."""
    before = int(broker.info("stats")["total_commands_processed"])
    run()
    return (int(broker.info("stats")["total_commands_processed"]) - before) / hops


@scenario("step_overhead", 1, "Step overhead: one run of trivial steps vs the bare hop")
def step_overhead(scale: Scale) -> Result:
    """Milliseconds per step of each system, and Ravel's ratio to the hop, per round."""
    hops = scale.pick(500, 200, 30)
    rounds = rounds_for(scale, 7, 3, 2)
    result = Result(
        "step_overhead",
        "step overhead",
        settings={"steps": hops, "rounds": rounds, "worker": "prefork -c 1"},
    )
    with rig(concurrency=1) as r, maybe_dbos() as dbos:
        systems = {
            "bare": lambda: {"ms": r.bare_chains(1, hops) / hops * 1000},
            "ravel": lambda: {"ms": r.ravel_loops(1, hops) / hops * 1000},
        }
        if dbos is not None:
            systems["dbos"] = lambda: {"ms": dbos.one_run(hops) * 1000}
        for system in systems.values():
            system()  # warm up every path first
        got = alternate(rounds, systems)
        _report(result, r, got, hops)
    return result


def _report(result: Result, r: Rig, got: dict[str, dict[str, list[float]]], hops: int) -> None:
    bare = result.measure("bare_hop_ms", "ms", got["bare"]["ms"])
    ravel = result.measure("ravel_step_ms", "ms", got["ravel"]["ms"])
    ratio = result.measure("ravel_over_bare", "x", ratios(got["ravel"]["ms"], got["bare"]["ms"]))
    result.row("bare Celery hop (acks_late, prefetch 1), per step", bare.text())
    result.row("Ravel step, per step", ravel.text())
    result.row("Ravel step / bare hop", ratio.text(), "<= 1.5x", ratio.median <= 1.5)
    if "dbos" in got:
        dbos = result.measure("dbos_step_ms", "ms", got["dbos"]["ms"])
        result.row("DBOS step (in-process, no hop), per step", dbos.text())
        # The durability a step pays: its time above the bare hop, against a DBOS step's.
        extra = [rv - b for rv, b in zip(got["ravel"]["ms"], got["bare"]["ms"], strict=True)]
        over = result.measure(
            "ravel_durability_over_dbos_step", "x", ratios(extra, got["dbos"]["ms"])
        )
        result.row(
            "Ravel's cost above the hop / a DBOS step", over.text(), "<= 0.5x", over.median <= 0.5
        )
    cb = _commands(r.broker, lambda: r.bare_chains(1, hops), hops)
    cr = _commands(r.broker, lambda: r.ravel_loops(1, hops), hops)
    result.measure("redis_commands_per_bare_hop", "", [cb])
    result.measure("redis_commands_per_ravel_step", "", [cr])
    result.row("Redis commands per hop: bare / Ravel", f"{cb:.1f} / {cr:.1f}")
