"""Workflows the dashboard's browser test drives (``RAVEL_WORKFLOWS=tests.e2e.dashboard_flows``):
an agent whose order needs finance's approval, and a workflow that fails until its state is
patched."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pipeline import Agent, Approval, Done, Next, RetryPolicy, StepContext, Workflow, tool


@tool
def lookup_vendor(name: str) -> dict[str, Any]:
    """Look a vendor up.

    Args:
        name: the vendor's name.
    """
    return {"vendor": name, "price_usd": 1249.5, "rating": "A"}


@tool(
    approval=Approval(approvers=["group:finance"], timeout=timedelta(days=3)), effect="idempotent"
)
def submit_order(vendor: str, amount: float, idempotency_key: str) -> dict[str, Any]:
    """Submit a purchase order.

    Args:
        vendor: who sells it.
        amount: total in USD.
    """
    return {"po": "PO-1001", "vendor": vendor, "amount": amount}


buyer = Agent(
    "e2e_dash_buyer",
    "Buy what the user asks for from the best vendor.",
    tools=[lookup_vendor, submit_order],
)

SCRIPT = {
    "turns": [
        {
            "content": "Checking the vendor first.",
            "tool_calls": [{"name": "lookup_vendor", "arguments": {"name": "globex"}}],
        },
        {
            "content": "Globex is rated A at $1249.50; ordering.",
            "tool_calls": [
                {"name": "submit_order", "arguments": {"vendor": "globex", "amount": 1249.5}}
            ],
        },
        {"content": "Ordered 5 laptops from Globex: PO-1001."},
    ]
}

fragile = Workflow("e2e_dash_fragile", version=1)


@fragile.step(start=True)
def check(ctx: StepContext) -> Any:
    ctx.state["vendor"] = "globex"
    return Next("place")


@fragile.step(retry=RetryPolicy(max_attempts=1))
def place(ctx: StepContext) -> Any:
    if not ctx.state.get("po_number"):
        raise RuntimeError("the vendor refused the order: no PO number in the state")
    return Done({"po": ctx.state["po_number"], "vendor": ctx.state["vendor"]})
