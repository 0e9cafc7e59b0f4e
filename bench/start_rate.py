"""Scenario 3, start rate: ``start_run`` calls from one process versus ``apply_async``.

    python -m bench start_rate [--scale tiny|small|full] [--rounds N]

No worker runs: the wake-ups stay queued (and are deleted after each round). ``start_run``
inserts the run (with its audit event) and publishes its first wake-up; the baseline
publishes a bare task to the same queue through the same Celery app. Each round also times
the two halves of a start on their own, the insert (``start_run`` up to its publish) and the publish
(``dispatch.publish``), to show where a start's time goes: their sum falls short of a whole
start by what alternating a database wait and a broker wait costs the process.
"""

from __future__ import annotations

import time

from bench.flows import loop
from bench.harness import Rig, rig
from bench.runner import Result, Scale, alternate, ratios, rounds_for, scenario
from pipeline import api, dispatch, start_run


def _ravel(r: Rig, count: int) -> dict[str, float]:
    start = time.perf_counter()
    for i in range(count):
        start_run(loop.name, {"left": 1, "i": i})
    rate = count / (time.perf_counter() - start)
    r.purge()  # the wake-ups went to the workflow version's queue
    return {"per_s": rate}


def _bare(r: Rig, count: int) -> dict[str, float]:
    start = time.perf_counter()
    for i in range(count):
        r.app.send_task("bench.hop", args=(1, f"bench:unused:{i}"), queue=r.queue)
    rate = count / (time.perf_counter() - start)
    r.broker.delete(r.queue)
    return {"per_s": rate}


def _insert_only(count: int) -> dict[str, float]:
    """``start_run`` without its publish: the run row and its first audit event."""
    start = time.perf_counter()
    for i in range(count):
        api._record_start(loop.name, {"left": 1, "i": i}, None, "api")
    return {"ms": (time.perf_counter() - start) / count * 1e3}


def _publish_only(r: Rig, count: int) -> dict[str, float]:
    """``start_run``'s publish without its insert: the wake-up of one recorded start."""
    _, wakeup = api._record_start(loop.name, {"left": 1}, None, "api")
    assert wakeup is not None
    start = time.perf_counter()
    for _ in range(count):
        dispatch.publish(wakeup)
    elapsed = time.perf_counter() - start
    r.purge()
    return {"ms": elapsed / count * 1e3}


@scenario("start_rate", 3, "Start rate: start_run vs apply_async from one process")
def start_rate(scale: Scale) -> Result:
    """Calls per second of each and their ratio per round; a start's insert and publish alone."""
    count = scale.pick(10_000, 2_000, 200)
    rounds = rounds_for(scale, 3, 2, 1)
    result = Result("start_rate", "start rate", settings={"calls": count, "rounds": rounds})
    with rig(workers=0) as r:
        _ravel(r, 50), _bare(r, 50)  # connections and caches, both
        got = alternate(
            rounds,
            {
                "bare": lambda: _bare(r, count),
                "ravel": lambda: _ravel(r, count),
                "insert": lambda: _insert_only(count),
                "publish": lambda: _publish_only(r, count),
            },
        )
    bare = result.measure("apply_async_per_s", "/s", got["bare"]["per_s"])
    ravel = result.measure("start_run_per_s", "/s", got["ravel"]["per_s"])
    ratio = result.measure(
        "start_run_over_apply_async", "x", ratios(got["ravel"]["per_s"], got["bare"]["per_s"])
    )
    result.row(f"apply_async, {count:,} calls", bare.text(0))
    result.row(f"start_run, {count:,} calls", ravel.text(0))
    result.row("start_run / apply_async rate", ratio.text(), ">= 0.5x", ratio.median >= 0.5)
    insert = result.measure("insert_only_ms", "ms", got["insert"]["ms"])
    publish = result.measure("publish_only_ms", "ms", got["publish"]["ms"])
    whole = result.measure("start_run_ms", "ms", [1e3 / v for v in got["ravel"]["per_s"]])
    result.row("a start: its insert alone", insert.text(3))
    result.row("a start: its publish alone", publish.text(3))
    result.row("a start, whole", whole.text(3))
    return result
