"""The outbox of Slack approval messages: one row per wait, claimed with a short lease.

A row is added after a run parks on an approval (or by :func:`add_unposted`, which finds open
approvals a dead worker never added). A poster claims due rows by moving ``next_attempt_at``
to the end of its lease, posts, then records the outcome. The wait id is the primary key, so
no interleaving of posters, sweeps and retries can create a second message for one wait; a
poster that dies mid-post leaves its row due again when the lease ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, or_, select, update

from models import AuditEvent, SlackMessage, Wait, table_of
from pipeline.store._db import Database, db_now, now_plus

outbox_t = table_of(SlackMessage)
waits_t = table_of(Wait)
audit_t = table_of(AuditEvent)

#: Longest error text kept on a row.
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Outgoing:
    """A claimed row: the wait to post, and how many attempts (this one included) it took."""

    wait_id: str
    run_id: str
    attempts: int


@dataclass(frozen=True)
class OutboxEntry:
    """A row as stored (for operators and tests)."""

    wait_id: str
    run_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    channel: str | None
    ts: str | None
    sent_at: datetime | None


def add(db: Database, wait_id: str, run_id: str) -> bool:
    """Queue the message of ``wait_id``; False if it was queued (or posted) already."""
    stmt = (
        db.dialect_insert(outbox_t)
        .values(
            wait_id=wait_id,
            run_id=run_id,
            status="pending",
            attempts=0,
            next_attempt_at=db_now(),
            created_at=db_now(),
        )
        .on_conflict_do_nothing(index_elements=["wait_id"])
    )
    with db.begin() as conn:
        return conn.execute(stmt).rowcount == 1


def add_unposted(db: Database, within_seconds: float, limit: int = 200) -> int:
    """Queue open approvals created in the last ``within_seconds`` that have no row yet (a
    worker died between the park's commit and queueing its message); returns how many."""
    missing = (
        select(waits_t.c.id, waits_t.c.run_id)
        .where(
            waits_t.c.kind == "approval",
            waits_t.c.decided_at.is_(None),
            waits_t.c.created_at > now_plus(-within_seconds),
            or_(waits_t.c.expires_at.is_(None), waits_t.c.expires_at > db_now()),
            ~exists().where(outbox_t.c.wait_id == waits_t.c.id),
        )
        .limit(limit)
    )
    added = 0
    with db.begin() as conn:
        for row in conn.execute(missing).all():
            stmt = (
                db.dialect_insert(outbox_t)
                .values(
                    wait_id=row.id,
                    run_id=row.run_id,
                    status="pending",
                    attempts=0,
                    next_attempt_at=db_now(),
                    created_at=db_now(),
                )
                .on_conflict_do_nothing(index_elements=["wait_id"])
            )
            added += conn.execute(stmt).rowcount
    return added


def claim_due(db: Database, lease_seconds: float, limit: int = 20) -> list[Outgoing]:
    """Claim up to ``limit`` due rows for ``lease_seconds`` (several posters never share one)."""
    with db.begin() as conn:
        due = (
            conn.execute(
                select(outbox_t.c.wait_id)
                .where(outbox_t.c.status == "pending", outbox_t.c.next_attempt_at <= db_now())
                .order_by(outbox_t.c.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        if not due:
            return []
        claimed = conn.execute(
            update(outbox_t)
            .where(
                outbox_t.c.wait_id.in_(due),
                outbox_t.c.status == "pending",
                outbox_t.c.next_attempt_at <= db_now(),
            )
            .values(next_attempt_at=now_plus(lease_seconds), attempts=outbox_t.c.attempts + 1)
            .returning(outbox_t.c.wait_id, outbox_t.c.run_id, outbox_t.c.attempts)
        ).all()
    return [Outgoing(r.wait_id, r.run_id, r.attempts) for r in claimed]


def _finish(db: Database, wait_id: str, **values: Any) -> bool:
    with db.begin() as conn:
        return (
            conn.execute(
                update(outbox_t)
                .where(outbox_t.c.wait_id == wait_id, outbox_t.c.status == "pending")
                .values(**values)
            ).rowcount
            == 1
        )


def mark_sent(db: Database, wait_id: str, channel: str | None, ts: str | None) -> bool:
    """Record that the message of ``wait_id`` was posted."""
    return _finish(
        db, wait_id, status="sent", channel=channel, ts=ts, sent_at=db_now(), last_error=None
    )


def mark_failed(db: Database, wait_id: str, error: str, retry_in: float | None) -> bool:
    """Record a failed attempt: due again in ``retry_in`` seconds, or given up (None)."""
    text = error[:MAX_ERROR_CHARS]
    if retry_in is None:
        return _finish(db, wait_id, status="failed", last_error=text)
    return _finish(db, wait_id, last_error=text, next_attempt_at=now_plus(retry_in))


def mark_dropped(db: Database, wait_id: str, why: str) -> bool:
    """Record that the wait closed before its message was posted: nothing to ask anymore."""
    return _finish(db, wait_id, status="dropped", last_error=why[:MAX_ERROR_CHARS])


def entry(db: Database, wait_id: str) -> OutboxEntry | None:
    """The row of ``wait_id``, or None."""
    with db.engine.connect() as conn:
        row = conn.execute(select(outbox_t).where(outbox_t.c.wait_id == wait_id)).first()
    if row is None:
        return None
    return OutboxEntry(
        row.wait_id,
        row.run_id,
        row.status,
        row.attempts,
        row.next_attempt_at,
        row.last_error,
        row.channel,
        row.ts,
        row.sent_at,
    )


def run_of_wait(db: Database, wait_id: str) -> str | None:
    """The run a wait belongs to, or None for an unknown wait id."""
    with db.engine.connect() as conn:
        found = conn.execute(select(waits_t.c.run_id).where(waits_t.c.id == wait_id)).first()
    return None if found is None else str(found.run_id)


def started_by(db: Database, run_id: str) -> str | None:
    """Who started (or forked) the run: the actor of its first audit event."""
    with db.engine.connect() as conn:
        found = conn.execute(
            select(audit_t.c.actor)
            .where(audit_t.c.run_id == run_id)
            .order_by(audit_t.c.idx)
            .limit(1)
        ).first()
    return None if found is None else str(found.actor)


__all__ = [
    "Outgoing",
    "OutboxEntry",
    "add",
    "add_unposted",
    "claim_due",
    "entry",
    "mark_dropped",
    "mark_failed",
    "mark_sent",
    "run_of_wait",
    "started_by",
]
