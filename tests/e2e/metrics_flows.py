"""Workflows of the metrics test (``RAVEL_WORKFLOWS=tests.e2e.metrics_flows``): one of each
outcome, so the exposition's counts can be compared with what is known to have happened."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pipeline import Agent, Done, Fail, StepContext, WaitForApproval, Workflow
from pipeline.retry import RetryPolicy

ok = Workflow("m_ok", version=1)


@ok.step(start=True)
def finish(ctx: StepContext) -> Any:
    return Done({"ok": True})


failing = Workflow("m_fail", version=1)


@failing.step(start=True)
def refuse(ctx: StepContext) -> Any:
    return Fail("refused on purpose")


parking = Workflow("m_park", version=1)


@parking.step(start=True)
def ask(ctx: StepContext) -> Any:
    return WaitForApproval(
        prompt="Go?", approvers=["finance"], timeout=timedelta(days=3), then="go"
    )


@parking.step
def go(ctx: StepContext) -> Any:
    return Done(None)


retrying = Workflow("m_retry", version=1)


@retrying.step(start=True, retry=RetryPolicy(max_attempts=3, initial_delay=0.2, backoff=1.0))
def flaky(ctx: StepContext) -> Any:
    if ctx.attempt == 1:
        raise RuntimeError("vendor API down (first attempt)")
    return Done({"attempt": ctx.attempt})


answering = Agent("m_agent", "Answer briefly.")
