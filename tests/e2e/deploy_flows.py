"""One workflow, ``e2e_deploy``, defined at two versions for the rolling-deploy test.

``deploy_v1`` and ``deploy_v2`` each define one version, as two releases of an application
would; a worker serves the versions whose modules ``RAVEL_WORKFLOWS`` names. Every step
appends its version to ``state["ran"]``, so the result shows which code ran each step. The
test process must not import these modules: it starts runs on whatever version the workers
registered.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pipeline import Done, Next, Sleep, StepContext, WaitForEvent, Workflow
from pipeline.retry import RetryPolicy

NAME = "e2e_deploy"


def define(version: int) -> Workflow:
    """``e2e_deploy`` at ``version``: ``tick`` ``state["ticks"]`` times, then ``finish``.

    Between ticks the run sleeps durably for ``state["nap"]`` seconds; with ``state["gate"]``
    it first waits for the event ``go`` after its first tick.
    """
    flow = Workflow(NAME, version=version, retry=RetryPolicy(max_attempts=3, initial_delay=0.2))

    @flow.step(start=True)
    def tick(ctx: StepContext) -> Any:
        ran = [*ctx.state.get("ran", []), version]
        ctx.state["ran"] = ran
        if ctx.state.get("gate") and len(ran) == 1:
            return WaitForEvent("go", then="tick")
        if len(ran) < ctx.state["ticks"]:
            return Sleep(timedelta(seconds=ctx.state["nap"]), then="tick")
        return Next("finish")

    @flow.step
    def finish(ctx: StepContext) -> Any:
        return Done({"ran": [*ctx.state["ran"], version]})

    return flow
