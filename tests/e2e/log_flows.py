"""The workflow of the logging end-to-end test (``RAVEL_WORKFLOWS=tests.e2e.log_flows``): it
logs a secret from its own code, sleeps (the reaper wakes it), fails once with the secret in
its error (the reaper wakes the retry), then waits for an approval over the HTTP API."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from pipeline import Done, RetryPolicy, Sleep, StepContext, WaitForApproval, Workflow

log = logging.getLogger("shop")
order = Workflow("e2e_logs_order", version=1)


@order.step(start=True)
def check(ctx: StepContext) -> Any:
    log.info("checking the order with the vendor key %s", os.environ["VENDOR_KEY"])
    return Sleep(timedelta(seconds=1), then="pay")


@order.step(retry=RetryPolicy(max_attempts=2, initial_delay=0.5))
def pay(ctx: StepContext) -> Any:
    if ctx.attempt == 1:
        raise RuntimeError(f"the vendor refused the key {os.environ['VENDOR_KEY']}")
    return WaitForApproval("Pay the vendor?", approvers=["group:finance"], then="done")


@order.step
def done(ctx: StepContext) -> Any:
    log.info("paid")
    return Done({"paid": True})
