"""The refund workflow of the README: check the order, ask finance above 100, refund.

A worker serves it with ``RAVEL_WORKFLOWS=examples.refund.flow celery -A tasks worker -B``;
``python -m examples.refund.run`` starts a run, approves it and prints its history.
"""

from __future__ import annotations

from datetime import timedelta

from examples.refund.systems import fetch_order, pay_refund
from pipeline import Done, Fail, Next, RetryPolicy, StepContext, WaitForApproval, Workflow
from pipeline.transitions import Transition

flow = Workflow("refund", version=1)


@flow.step(start=True, retry=RetryPolicy(max_attempts=5, initial_delay=1.0, backoff=2.0))
def check(ctx: StepContext) -> Transition:
    """Look the order up; refunds over 100 wait for finance."""
    order = ctx.effect("fetch_order", fetch_order, ctx.state["order_id"])  # journaled: runs once
    ctx.state["amount"] = order["amount"]
    if order["amount"] > 100:
        return WaitForApproval(
            prompt=f"Refund {order['amount']}?",
            approvers=["finance"],
            timeout=timedelta(days=7),
            then="refund",
        )
    return Next("refund")


@flow.step
def refund(ctx: StepContext) -> Transition:
    """Pay the refund, with a key the payment service dedupes on."""
    if ctx.wait_result and ctx.wait_result.decision != "approved":
        return Fail("refund not approved")
    ctx.effect("pay", pay_refund, ctx.state["order_id"], idempotency_key=ctx.idempotency_key("pay"))
    return Done({"refunded": ctx.state["amount"]})
