"""The refund example's outside world: an order lookup and a payment service.

Stand-ins for real systems, kept as JSON files under ``RAVEL_HOME`` (``refund-example/``) so
that the worker that runs the steps and the script that reports on them see the same data
without a server. The payment service dedupes by idempotency key the way real payment APIs
do: a request repeated with the same key returns the original payment instead of paying
again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.settings import get_settings

#: The order system's records: order 42 needs finance's approval (over 100), order 7 does not.
ORDERS: dict[int, dict[str, Any]] = {
    42: {"order_id": 42, "amount": 250.0, "customer": "ada@example.com"},
    7: {"order_id": 7, "amount": 40.0, "customer": "alan@example.com"},
}


def folder() -> Path:
    """Where the stand-ins keep their files: ``$RAVEL_HOME/refund-example``."""
    return get_settings().home / "refund-example"


def fetch_order(order_id: int) -> dict[str, Any]:
    """Look an order up, as an order service would.

    Args:
        order_id: the order's number.

    Raises:
        LookupError: there is no such order.
    """
    order = ORDERS.get(int(order_id))
    if order is None:
        raise LookupError(f"no order {order_id}; known orders: {sorted(ORDERS)}")
    return dict(order)


@contextlib.contextmanager
def _ledger() -> Iterator[dict[str, Any]]:
    """The payment ledger, locked against other processes while the caller updates it."""
    path = folder() / "payments.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        # Worker processes pay concurrently; the lock makes read-modify-write atomic.
        fcntl.flock(lock, fcntl.LOCK_EX)
        data: dict[str, Any] = (
            json.loads(path.read_text()) if path.exists() else {"requests": {}, "payments": []}
        )
        yield data
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)  # readers never see a half-written file


def pay_refund(order_id: int, idempotency_key: str) -> dict[str, Any]:
    """Refund an order's amount, once per idempotency key.

    Args:
        order_id: the order to refund.
        idempotency_key: the caller's key; a repeated request with it returns the
            original payment and pays nothing.

    Returns:
        The payment: ``payment_id``, ``order_id``, ``amount``, ``idempotency_key``.
    """
    order = fetch_order(order_id)
    with _ledger() as ledger:
        requests = ledger["requests"]
        requests[str(order_id)] = requests.get(str(order_id), 0) + 1
        for payment in ledger["payments"]:
            if payment["idempotency_key"] == idempotency_key:
                return dict(payment)
        payment = {
            "payment_id": f"re_{len(ledger['payments']) + 1:04d}",
            "order_id": order["order_id"],
            "amount": order["amount"],
            "idempotency_key": idempotency_key,
        }
        ledger["payments"].append(payment)
        return dict(payment)


def payments(order_id: int) -> tuple[list[dict[str, Any]], int]:
    """The payments made for an order, and how many refund requests the service got for it."""
    with _ledger() as ledger:
        made = [p for p in ledger["payments"] if p["order_id"] == order_id]
        return made, int(ledger["requests"].get(str(order_id), 0))
