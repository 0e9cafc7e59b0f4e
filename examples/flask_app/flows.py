"""The Flask shop's refund workflow: a member of group finance decides."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pipeline import Done, StepContext, WaitForApproval, Workflow

refund = Workflow("flask_refund", version=1)


@refund.step(start=True)
def ask_finance(ctx: StepContext) -> Any:
    """Park until a member of group finance decides."""
    return WaitForApproval(
        prompt=f"Refund {ctx.state['amount']} to {ctx.state['customer']}?",
        approvers=["group:finance"],
        timeout=timedelta(days=3),
        then="settle",
        data={"action": "refund", "amount": ctx.state["amount"]},
    )


@refund.step
def settle(ctx: StepContext) -> Any:
    """Record how finance decided."""
    decided = ctx.wait_result
    assert decided is not None
    return Done({"decision": decided.decision, "by": decided.actor, "as": decided.principal})
