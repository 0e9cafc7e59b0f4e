"""What the benchmark's worker serves: a Ravel loop workflow and a bare Celery hop."""

from __future__ import annotations

import functools
from typing import Any

import redis
from celery import shared_task

from pipeline import Done, Next, StepContext, Workflow
from pipeline.settings import get_settings

loop = Workflow("bench_loop", version=1)


@loop.step(start=True)
def hop(ctx: StepContext) -> Any:
    left = ctx.state["left"] - 1
    ctx.state["left"] = left
    return Next("hop") if left > 0 else Done(None)


@shared_task(name="bench.hop", acks_late=True, ignore_result=True)
def bare_hop(left: int, key: str) -> None:
    """The baseline: a Celery task that publishes the next one, with acks_late."""
    if left > 1:
        bare_hop.apply_async(args=(left - 1, key), queue=get_settings().default_queue)
    else:
        _redis().rpush(key, "done")


@functools.cache
def _redis() -> redis.Redis:
    """This pool process's client (made on first use, after the fork)."""
    return redis.Redis.from_url(get_settings().broker_url)


@shared_task(name="bench.wake", acks_late=True, ignore_result=True)
def bare_wake(key: str) -> None:
    """The baseline of a resumed run: a task that only says it ran."""
    _redis().rpush(key, "done")


parked = Workflow("bench_parked", version=1)


@parked.step(start=True)
def ask(ctx: StepContext) -> Any:
    from pipeline import WaitForApproval

    return WaitForApproval("go on?", approvers=["bench"], then="finish")


@parked.step
def finish(ctx: StepContext) -> Any:
    return Done(None)


crash = Workflow("bench_crash", version=1)


@crash.step(start=True)
def work(ctx: StepContext) -> Any:
    """Says which process began each attempt and when, then works for a while: until the
    run is cancelled (the benchmark cancels it once measured, freeing the worker for the
    next round's takeover)."""
    import os
    import time

    _redis().rpush(f"bench:crash:{ctx.run_id}", f"{os.getpid()} {time.time()}")
    until = time.monotonic() + ctx.state["seconds"]
    while time.monotonic() < until and not ctx.lease_lost:
        time.sleep(0.05)
    return Done(None)
