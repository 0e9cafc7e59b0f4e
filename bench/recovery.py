"""Scenario 6, recovery: SIGKILL a worker mid-step; time until the step runs again elsewhere.

    python -m bench recovery [--scale tiny|small|full] [--rounds N]

Two workers (prefork, ``-c 1``) and a separate beat (the reaper). A step records when each
attempt begins and in which process, then works for a minute. Once it has begun, the worker
running it is killed with its whole process group (SIGKILL), and the time until the step's
next attempt begins in the other worker is measured; a fresh worker then replaces the dead
one. With the default settings (lease 15 s, reaper every 1 s) and with the fastest supported
ones (lease 2 s, reaper every 0.5 s, re-publish after 2 s). The documented bound is the lease
plus one reaper pass; it holds when ``RAVEL_REDISPATCH_AFTER`` is not longer than the lease.
"""

from __future__ import annotations

import time

from bench.harness import Rig, rig
from bench.procstat import session_pids
from bench.runner import Result, Scale, rounds_for, scenario
from pipeline import cancel_run, start_run

SETTINGS = {
    "default": {},
    # The re-publish of a run whose lease expired also waits for its redispatch time (set
    # when its wake-up was published): a short lease alone does not shorten recovery.
    "fast": {
        "RAVEL_LEASE_SECONDS": "2",
        "RAVEL_REAPER_INTERVAL": "0.5",
        "RAVEL_REDISPATCH_AFTER": "2",
    },
}


def _attempts(r: Rig, run_id: str, count: int, timeout: float) -> list[tuple[int, float]]:
    """Wait until the step's ``count``-th attempt began; (pid, time) of each attempt."""
    key = f"bench:crash:{run_id}"
    deadline = time.monotonic() + timeout
    while r.broker.llen(key) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"attempt {count} of run {run_id} did not begin in {timeout} s")
        time.sleep(0.01)
    raw: list[bytes] = r.broker.lrange(key, 0, -1)  # type: ignore[assignment]
    entries = (x.decode().split() for x in raw)
    return [(int(pid), float(at)) for pid, at in entries]


def _one(r: Rig, env: dict[str, str], timeout: float) -> float:
    run_id = start_run("bench_crash", {"seconds": 60})
    pid, _ = _attempts(r, run_id, 1, 60)[0]
    victim = next(w for w in r.workers if w.alive() and pid in session_pids(w.pid))
    killed = time.time()
    victim.kill()
    r.workers.remove(victim)
    _, again = _attempts(r, run_id, 2, timeout)[1]
    # The surviving worker now runs the step: cancelled, it stops within a third of a lease,
    # so it is free to take over the next round's step (else that one waits for it).
    cancel_run(run_id, "bench", "measured")
    r.worker(1, env)  # two workers again for the next round
    return again - killed


@scenario("recovery", 6, "Recovery: SIGKILL a worker mid-step")
def recovery(scale: Scale) -> Result:
    """Seconds from the kill to the step's next attempt, per settings."""
    rounds = rounds_for(scale, 3, 2, 1)
    result = Result(
        "recovery",
        "recovery",
        settings={
            "rounds": rounds,
            "workers": "2 x prefork -c 1, a separate beat",
            "settings": SETTINGS,
        },
    )
    for name, env in SETTINGS.items():
        lease = float(env.get("RAVEL_LEASE_SECONDS", 15))
        interval = float(env.get("RAVEL_REAPER_INTERVAL", 1))
        with rig(concurrency=1, workers=2, extra_env=env) as r:
            r.cluster.beat()
            samples = [_one(r, env, lease * 4 + 30) for _ in range(rounds)]
        took = result.measure(f"recovery_{name}_s", "s", samples)
        bound = lease + interval
        again = env.get("RAVEL_REDISPATCH_AFTER", "5")
        target = f"<= {bound:g} s" + (", < 3 s" if name == "fast" else "")
        met = max(took.samples) <= bound and (name != "fast" or took.median < 3)
        result.row(
            f"{name} (lease {lease:g} s, reaper every {interval:g} s, re-publish after "
            f"{again} s): kill to next attempt",
            took.text(),
            target,
            met,
        )
    return result
