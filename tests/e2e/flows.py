"""Workflows the end-to-end tests run on real workers (``RAVEL_WORKFLOWS=tests.e2e.flows``).

Effects append a line to a file the test owns (``state["ledger"]``), so a test can count
how often an effect's function really ran, across processes and crashes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pipeline import Done, Next, StepContext, WaitForApproval, Workflow
from pipeline.retry import RetryPolicy


def append_line(path: str, line: str) -> str:
    """The effect under test: one line per real execution."""
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
    return line


charge = Workflow("e2e_charge", version=1, retry=RetryPolicy(max_attempts=5, initial_delay=0.2))


@charge.step(start=True)
def pay(ctx: StepContext) -> Any:
    ctx.effect("charge", append_line, ctx.state["ledger"], f"{ctx.run_id}:charge")
    ctx.state["paid"] = True
    return Next("receipt")


@charge.step
def receipt(ctx: StepContext) -> Any:
    return Done({"paid": ctx.state["paid"]})


chain = Workflow("e2e_chain", version=1, retry=RetryPolicy(max_attempts=10, initial_delay=0.2))


@chain.step(start=True)
def tick(ctx: StepContext) -> Any:
    i = ctx.state.get("i", 0)
    ctx.effect("tick", append_line, ctx.state["ledger"], f"{ctx.run_id}:{i}")
    ctx.state["i"] = i + 1
    return Next("tick") if i + 1 < ctx.state["n"] else Done({"ticks": i + 1})


approval = Workflow("e2e_approval", version=1)


@approval.step(start=True)
def propose(ctx: StepContext) -> Any:
    ctx.state["proposal"] = ctx.effect(
        "draft", append_line, ctx.state["ledger"], f"{ctx.run_id}:draft"
    )
    return WaitForApproval(
        prompt="Buy 5 laptops?", approvers=["finance"], timeout=timedelta(days=3), then="submit"
    )


@approval.step
def submit(ctx: StepContext) -> Any:
    assert ctx.wait_result is not None
    if ctx.wait_result.decision != "approved":
        return Done({"submitted": False})
    ctx.effect("submit", append_line, ctx.state["ledger"], f"{ctx.run_id}:submit")
    return Done({"submitted": True, "proposal": ctx.state["proposal"]})


flaky = Workflow("e2e_flaky", version=1)


@flaky.step(start=True, retry=RetryPolicy(max_attempts=3, initial_delay=1.0, backoff=2.0))
def attempt(ctx: StepContext) -> Any:
    """Fails until the file ``state["fixed"]`` exists or the ledger shows two failures."""
    import os

    ctx.effect("before", append_line, ctx.state["ledger"], f"{ctx.run_id}:before")
    append_line(ctx.state["attempts"], "x")  # not journaled: counts real attempts
    with open(ctx.state["attempts"]) as f:
        tries = len(f.read().splitlines())
    if not os.path.exists(ctx.state["fixed"]) and tries <= ctx.state.get("fail_times", 2):
        raise RuntimeError(f"vendor API down (try {tries})")
    return Done({"tries": tries})


poison = Workflow("e2e_poison", version=1)


@poison.step(start=True, retry=RetryPolicy(max_attempts=2, initial_delay=0.1))
def crash(ctx: StepContext) -> Any:
    """Kills its own worker process every time, like a step that runs out of memory."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
    return Done(None)  # never reached


slow = Workflow("e2e_slow", version=1, retry=RetryPolicy(max_attempts=5, initial_delay=0.1))


@slow.step(start=True)
def work(ctx: StepContext) -> Any:
    """A long step: journal an effect, say so in ``state["marker"]``, then take a while."""
    import time

    ctx.effect("effect", append_line, ctx.state["ledger"], f"{ctx.run_id}:effect")
    append_line(ctx.state["marker"], f"attempt {ctx.attempt}")
    time.sleep(ctx.state["sleep"] if ctx.attempt == 1 else 0)
    ctx.state["done_by_attempt"] = ctx.attempt
    return Done({"attempt": ctx.attempt})
