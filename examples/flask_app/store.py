"""The shop's own database (a SQLite file): refund requests and their Ravel run."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS refunds (
    id INTEGER PRIMARY KEY,
    customer TEXT NOT NULL,
    amount TEXT NOT NULL,
    run_id TEXT,
    confirmation_sent INTEGER NOT NULL DEFAULT 0
)
"""


def path() -> str:
    """``FLASK_SHOP_DATABASE``, else ``flask_shop.sqlite3`` in the working directory."""
    return os.environ.get("FLASK_SHOP_DATABASE", "flask_shop.sqlite3")


@contextmanager
def transaction() -> Iterator[sqlite3.Connection]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with closing(sqlite3.connect(path(), timeout=10)) as db, db:
        db.row_factory = sqlite3.Row
        db.execute(_SCHEMA)
        yield db


def refund(refund_id: int) -> dict[str, Any] | None:
    """One refund request."""
    with transaction() as db:
        row = db.execute("SELECT * FROM refunds WHERE id = ?", (refund_id,)).fetchone()
    return dict(row) if row else None


def refunds_of(customer: str) -> list[dict[str, Any]]:
    """A customer's refund requests, newest first."""
    with transaction() as db:
        rows = db.execute(
            "SELECT * FROM refunds WHERE customer = ? ORDER BY id DESC", (customer,)
        ).fetchall()
    return [dict(r) for r in rows]
