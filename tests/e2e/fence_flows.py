"""A workflow whose step pauses between two effects, for the fencing tests
(``RAVEL_WORKFLOWS=tests.e2e.fence_flows``).

Effect ``a`` appends to ``state["ledger"]``; effect ``b`` appends to ``state["remote"]`` (the
"remote system" whose calls the tests count). Between them the step writes
``attempt N`` to ``state["marker"]`` and blocks until the file ``state["release"]`` exists,
so a test can cancel the run, or freeze the worker, at that exact point.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pipeline import Done, StepContext, Workflow
from pipeline.retry import RetryPolicy
from tests.e2e.flows import append_line

fence = Workflow("e2e_fence", version=1, retry=RetryPolicy(max_attempts=3, initial_delay=0.2))


def wait_for_file(path: str, timeout: float) -> None:
    """Block until ``path`` exists; fail the attempt after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout:.0f}s")
        time.sleep(0.05)


@fence.step(start=True)
def transfer(ctx: StepContext) -> Any:
    ctx.effect("a", append_line, ctx.state["ledger"], f"{ctx.run_id}:a")
    append_line(ctx.state["marker"], f"attempt {ctx.attempt}")  # not journaled
    wait_for_file(ctx.state["release"], ctx.state.get("hold", 40))
    ctx.effect("b", append_line, ctx.state["remote"], f"{ctx.run_id}:b:attempt {ctx.attempt}")
    ctx.state["by_attempt"] = ctx.attempt
    return Done({"attempt": ctx.attempt})
