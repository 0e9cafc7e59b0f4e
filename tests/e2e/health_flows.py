"""Workflows for the reaper, start-up and Flower tests (``RAVEL_WORKFLOWS=...health_flows``)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from pipeline import Done, Fail, Sleep, StepContext, Workflow
from pipeline.retry import RetryPolicy

busy = Workflow("hb_busy", version=1)


@busy.step(start=True)
def churn(ctx: StepContext) -> Any:
    """A step that takes ``state["ms"]`` milliseconds: many of them make a backlog."""
    time.sleep(ctx.state.get("ms", 75) / 1000)
    return Done(None)


nap = Workflow("hb_nap", version=1)


@nap.step(start=True)
def doze(ctx: StepContext) -> Any:
    return Sleep(timedelta(seconds=ctx.state["seconds"]), then="wake")


@nap.step
def wake(ctx: StepContext) -> Any:
    return Done({"woke": True})


broken = Workflow("hb_broken", version=1)


@broken.step(start=True, retry=RetryPolicy(max_attempts=2, initial_delay=1.0))
def call_vendor(ctx: StepContext) -> Any:
    """Always fails; the message carries a secret that must never reach Celery or Flower."""
    raise RuntimeError(f"vendor refused the order (key {ctx.state['key']})")


refuse = Workflow("hb_refuse", version=1)


@refuse.step(start=True)
def decide(ctx: StepContext) -> Any:
    return Fail("order refused: over budget")
