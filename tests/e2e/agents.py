"""An agent for the end-to-end crash tests (``RAVEL_WORKFLOWS=tests.e2e.agents``).

Its tool writes a line to ``$E2E_LEDGER`` each time it really runs.
"""

from __future__ import annotations

import os
from typing import Any

from pipeline import Agent, tool
from pipeline.faults import fault


@tool
def lookup(sku: str) -> dict[str, Any]:
    """Look up a product.

    Args:
        sku: the product's SKU.
    """
    return {"sku": sku, "price": 12.5}


@tool(effect="idempotent")
def charge(amount: float, idempotency_key: str) -> dict[str, Any]:
    """Charge the customer.

    Args:
        amount: USD.
    """
    with open(os.environ["E2E_LEDGER"], "a") as f:
        f.write(f"{idempotency_key}\n")
    fault("inside_charge")  # armed by a test: the charge happened, its result is unrecorded
    return {"charged": amount, "receipt": "R-1"}


shopper = Agent("e2e_shopper", "Buy what the user asks for.", tools=[lookup, charge])

SCRIPT = {
    "turns": [
        {"tool_calls": [{"name": "lookup", "arguments": {"sku": "A-1"}}]},
        {"tool_calls": [{"name": "charge", "arguments": {"amount": 12.5}}]},
        {"content": "Bought A-1 for $12.50, receipt R-1."},
    ]
}
