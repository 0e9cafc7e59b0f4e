"""The refund workflow: finance approves, then the order is marked refunded (or refused).

Loaded by the worker (``RAVEL_WORKFLOWS=shop.flows``) once Django is set up, so its steps may
use the shop's models. The web process never imports it: ``start_run`` finds the workflow in
Ravel's database, where the worker recorded it.
"""

from datetime import timedelta
from typing import Any

from pipeline import Done, StepContext, WaitForApproval, Workflow

refund = Workflow("shop_refund", version=1)


def mark_order(order_id: int, status: str) -> str:
    """Set the order's status (journaled: done once per run, whatever happens after)."""
    from .models import Order

    Order.objects.filter(pk=order_id).update(status=status)
    return status


@refund.step(start=True)
def ask_finance(ctx: StepContext) -> Any:
    """Park until a member of the Django group ``finance`` decides."""
    order = ctx.state
    return WaitForApproval(
        prompt=f"Refund {order['amount']} to {order['customer']} for order #{order['order_id']}?",
        approvers=["group:finance"],
        timeout=timedelta(days=3),
        then="settle",
        data={"action": "refund", "order_id": order["order_id"], "amount": order["amount"]},
    )


@refund.step
def settle(ctx: StepContext) -> Any:
    """Mark the order as the decision says."""
    decided = ctx.wait_result
    assert decided is not None
    approved = decided.decision == "approved"
    status = ctx.effect(
        "mark_order",
        mark_order,
        ctx.state["order_id"],
        "refunded" if approved else "refund_refused",
    )
    return Done(
        {
            "order_status": status,
            "decision": decided.decision,
            "by": decided.actor,
            "as": decided.principal,
        }
    )
