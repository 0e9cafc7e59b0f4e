"""The workflow the Django view tests park on an approval of group finance."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pipeline import Done, StepContext, WaitForApproval, Workflow

refund = Workflow("dj_refund", version=1)


@refund.step(start=True)
def check(ctx: StepContext) -> Any:
    return WaitForApproval(
        prompt=f"Refund {ctx.state['amount']}?",
        approvers=["group:finance"],
        timeout=timedelta(days=3),
        then="pay",
        data={"action": "refund", "amount": ctx.state["amount"]},
    )


@refund.step
def pay(ctx: StepContext) -> Any:
    assert ctx.wait_result is not None
    return Done(
        {
            "decision": ctx.wait_result.decision,
            "by": ctx.wait_result.actor,
            "as": ctx.wait_result.principal,
            "note": ctx.wait_result.data,
        }
    )
