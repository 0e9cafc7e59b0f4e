"""The fault schedule, drawn from the seed: which fault strikes when, on what, for how long.

Recurring kinds strike about once per 45 s of the fault phase each (at least once); the
``once`` kinds (the new-version deploy, the broker flush or queue deletion, the PostgreSQL
restart) strike once. The same seed, run count and duration give the same schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: faults on workers (``target`` is a worker slot)
WORKER_KINDS = ("worker_kill", "worker_kill_at", "worker_term", "worker_stop")
#: faults on the servers, through their processes or the proxy in front of them
SERVER_KINDS = ("broker_restart", "cut_broker", "delay_broker", "cut_pg", "delay_pg")
ONCE_KINDS = ("deploy_v2", "broker_flush", "pg_restart")
ALL_KINDS = (*WORKER_KINDS, *SERVER_KINDS, *ONCE_KINDS)
#: fault points a worker is restarted with, to die at that exact moment (pipeline.faults)
KILL_POINTS = (
    "after_claim",
    "after_effect_intent@act",
    "after_effect_call_before_record@act",
    "after_effect_call_before_commit@act",
    "after_llm_response_before_persist",
    "before_commit",
    "after_commit_before_publish",
)
_PERIOD = 45.0


@dataclass(frozen=True)
class Fault:
    """One scheduled fault.

    Attributes:
        at: seconds after the start of the fault phase.
        kind: one of :data:`ALL_KINDS`.
        target: the worker slot for worker faults, else None.
        hold: how long the fault lasts (stopped, cut, delayed, down), in seconds.
        detail: the fault point (``worker_kill_at``) or the added latency (``delay_*``).
    """

    at: float
    kind: str
    target: int | None = None
    hold: float = 0.0
    detail: str = ""

    @property
    def lock(self) -> str:
        """Faults on the same thing are applied one after another."""
        if self.target is not None:
            return f"worker{self.target}"
        if self.kind in ("deploy_v2",):
            return "deploy"
        return "pg" if self.kind.endswith("pg") else "broker"


def draw_schedule(
    seed: int, duration: float, workers: int, lease: float, kinds: tuple[str, ...] = ALL_KINDS
) -> list[Fault]:
    """The faults of a run, sorted by time.

    Args:
        seed: the nemesis's seed.
        duration: seconds of the fault phase.
        workers: worker slots to pick targets from.
        lease: the lease in seconds (a stopped worker stays stopped past it).
        kinds: the kinds to draw (those the harness can inject).
    """
    rng = random.Random(f"{seed}/faults")
    repeats = max(1, round(duration / _PERIOD))
    faults: list[Fault] = []
    for kind in kinds:
        count = 1 if kind in ONCE_KINDS else repeats
        for _ in range(count):
            low, high = (0.3, 0.6) if kind == "deploy_v2" else (0.05, 0.85)
            faults.append(_fault(rng, kind, rng.uniform(low, high) * duration, workers, lease))
    return sorted(faults, key=lambda f: f.at)


def _fault(rng: random.Random, kind: str, at: float, workers: int, lease: float) -> Fault:
    target = rng.randrange(workers) if kind in WORKER_KINDS or kind == "deploy_v2" else None
    if kind == "worker_stop":
        return Fault(at, kind, target, hold=rng.uniform(2.0, 3.5) * lease)
    if kind == "worker_kill_at":
        return Fault(at, kind, target, detail=rng.choice(KILL_POINTS))
    if kind in ("worker_kill", "worker_term", "deploy_v2"):
        return Fault(at, kind, target, hold=rng.uniform(0.5, 3.0))
    if kind.startswith("cut_"):
        return Fault(at, kind, hold=rng.uniform(1.0, 4.0))
    if kind.startswith("delay_"):
        return Fault(at, kind, hold=rng.uniform(3.0, 8.0), detail=f"{rng.uniform(0.05, 0.4):.2f}")
    return Fault(at, kind, hold=rng.uniform(0.5, 2.5))
