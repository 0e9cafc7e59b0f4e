"""What the reaper finds due: sleeping runs to wake, lost wake-ups, expired waits.

Each sweep takes a bounded batch with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
beat or worker processes can sweep at once without colliding (SQLite's single writer gives
the same guarantee for the embedded default).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update

from models import Run, Wait, table_of
from pipeline.status import RunStatus, sources
from pipeline.store._db import Database, db_now, now_plus
from pipeline.store.audit_log import Chain
from pipeline.store.decisions import Wakeup

runs_t = table_of(Run)
waits_t = table_of(Wait)
BATCH = 200


def wake_due_sleepers(db: Database) -> list[Wakeup]:
    """Move sleeping runs whose ``wake_at`` passed to pending."""
    woken: list[Wakeup] = []
    with db.begin() as conn:
        due = conn.execute(
            select(runs_t.c.id, runs_t.c.workflow, runs_t.c.step, runs_t.c.seq,
                   runs_t.c.audit_seq, runs_t.c.audit_head, runs_t.c.wake_at,
                   db_now().label("now"))
            .where(runs_t.c.status == RunStatus.SLEEPING.value, runs_t.c.wake_at <= db_now())
            .order_by(runs_t.c.wake_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        for r in due:
            chain = Chain(r.id, r.audit_seq, r.audit_head)
            chain.append("run.woken", "reaper", r.now, r.step, {"wake_at": r.wake_at.isoformat()})
            moved = conn.execute(
                update(runs_t)
                .where(runs_t.c.id == r.id, runs_t.c.status.in_(sources(RunStatus.PENDING)),
                       runs_t.c.status == RunStatus.SLEEPING.value)
                .values(status=RunStatus.PENDING.value, wake_at=None, published_at=r.now,
                        updated_at=r.now, version=runs_t.c.version + 1,
                        audit_seq=chain.seq, audit_head=chain.head)
            ).rowcount
            if moved:
                chain.flush(conn)
                woken.append(Wakeup(r.id, r.workflow, r.step, r.seq))
    return woken


def overdue_wakeups(db: Database, redispatch_after: float) -> list[Wakeup]:
    """Runnable runs whose wake-up may be lost: pending too long, or leases that expired.

    Touches only ``published_at`` (no status change), so a repeated publish is harmless: the
    claim lets exactly one wake-up through. A run still pending after a re-publish is most
    likely queued behind a backlog, not lost: each further re-publish waits as long as the
    run had already waited (R, 2R, 4R ... after it became runnable, at most
    ``MAX_REDISPATCH_GAP``), so a slow queue is not flooded with duplicates.
    """
    stale = now_plus(-redispatch_after)
    cond = or_(
        and_(runs_t.c.status == RunStatus.PENDING.value, runs_t.c.published_at < stale),
        and_(
            runs_t.c.status == RunStatus.RUNNING.value,
            runs_t.c.lease_expires_at < db_now(),
            or_(runs_t.c.published_at.is_(None), runs_t.c.published_at < stale),
        ),
    )
    with db.begin() as conn:
        rows = conn.execute(
            select(runs_t.c.id, runs_t.c.workflow, runs_t.c.step, runs_t.c.seq,
                   runs_t.c.status, runs_t.c.published_at, runs_t.c.updated_at,
                   db_now().label("now"))
            .where(cond)
            .order_by(runs_t.c.published_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        due = [r for r in rows if r.status != RunStatus.PENDING.value
               or _backoff_passed(r.now, r.published_at, r.updated_at, redispatch_after)]
        if due:
            conn.execute(
                update(runs_t)
                .where(runs_t.c.id.in_([r.id for r in due]))
                .values(published_at=db_now())
            )
    return [Wakeup(r.id, r.workflow, r.step, r.seq) for r in due]


MAX_REDISPATCH_GAP = 300.0


def _backoff_passed(
    now: datetime, published_at: datetime, runnable_since: datetime, first_gap: float
) -> bool:
    """Whether a pending run's next re-publish is due (see :func:`overdue_wakeups`)."""
    waited = (published_at - runnable_since).total_seconds()
    gap = min(max(first_gap, waited), MAX_REDISPATCH_GAP)
    return (now - published_at).total_seconds() >= gap


def expired_waits(db: Database) -> list[Any]:
    """Open waits whose deadline passed, as (run_id, wait_id) rows."""
    with db.engine.connect() as conn:
        return list(
            conn.execute(
                select(waits_t.c.run_id, waits_t.c.id)
                .where(waits_t.c.decided_at.is_(None), waits_t.c.expires_at <= db_now())
                .order_by(waits_t.c.expires_at)
                .limit(BATCH)
            )
        )
