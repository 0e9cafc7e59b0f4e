"""Appending to and reading the hash-chained audit log (inside the caller's transaction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from models import AuditEvent, table_of
from pipeline.audit import event_hash

audit_t = table_of(AuditEvent)
_INSERT = insert(audit_t)  # built once: it is on every step's commit


@dataclass
class Chain:
    """The head of a run's chain, as read with the run row, advanced by :meth:`append`."""

    run_id: str
    seq: int
    head: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def append(
        self, kind: str, actor: str, at: datetime, step: str | None, data: dict[str, Any]
    ) -> None:
        """Queue one event; :func:`flush` writes the queued rows in one statement."""
        self.seq += 1
        digest = event_hash(self.head, self.run_id, self.seq, kind, actor, at, step, data)
        self.rows.append(
            {
                "run_id": self.run_id,
                "idx": self.seq,
                "kind": kind,
                "actor": actor,
                "at": at,
                "step": step,
                "data": data,
                "hash": digest,
            }
        )
        self.head = digest

    def take(self) -> list[dict[str, Any]]:
        """The queued rows, handed to a caller that writes them itself (then none is queued)."""
        rows, self.rows = self.rows, []
        return rows

    def flush(self, conn: Connection) -> None:
        """Insert the queued events (one executemany round trip)."""
        if rows := self.take():
            conn.execute(_INSERT, rows)


def read_events(conn: Connection, run_id: str) -> list[Any]:
    """All audit rows of a run, oldest first."""
    return list(
        conn.execute(select(audit_t).where(audit_t.c.run_id == run_id).order_by(audit_t.c.idx))
    )
