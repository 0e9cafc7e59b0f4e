"""What the reaper finds due: sleeping runs to wake, lost wake-ups, expired waits.

Each sweep takes a bounded batch with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
beat or worker processes can sweep at once without colliding (SQLite's single writer gives
the same guarantee for the embedded default). Each row is handled in its own savepoint: a row
that cannot be handled is logged and skipped, and never stops the pass for the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, and_, bindparam, or_, select, update

from models import Run, Wait, table_of
from pipeline.status import RunStatus
from pipeline.store._db import Database, db_now
from pipeline.store.audit_log import Chain
from pipeline.store.decisions import Wakeup
from pipeline.store.records import DueWait, from_row
from pipeline.store.transition import transition

log = logging.getLogger("ravel.reaper")
runs_t = table_of(Run)
waits_t = table_of(Wait)
BATCH = 200
#: the longest a still-pending run waits between two re-publishes of its wake-up
MAX_REDISPATCH_GAP = 300.0
T = TypeVar("T")


@dataclass
class Sweep:
    """What one sweep found: wake-ups to publish, and the rows it had to skip."""

    wakeups: list[Wakeup] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _each(
    conn: Connection,
    rows: Sequence[Row[Any]],
    handle: Callable[[Row[Any]], T | None],
    sweep: Sweep,
    what: str,
) -> list[T]:
    """Handle each row in its own savepoint; log and skip a row that raises."""
    done: list[T] = []
    for row in rows:
        try:
            with conn.begin_nested():
                result = handle(row)
        except Exception as exc:
            log.exception("reaper: could not %s run %s; skipped this pass", what, row.id)
            sweep.errors.append(f"{what} {row.id}: {type(exc).__name__}: {exc}")
            continue
        if result is not None:
            done.append(result)
    return done


def wake_due_sleepers(db: Database, redispatch_after: float) -> Sweep:
    """Move sleeping runs whose ``wake_at`` passed to pending."""
    sweep = Sweep()
    with db.begin() as conn:
        due = conn.execute(
            select(
                runs_t.c.id,
                runs_t.c.workflow,
                runs_t.c.workflow_version,
                runs_t.c.step,
                runs_t.c.seq,
                runs_t.c.audit_seq,
                runs_t.c.audit_head,
                runs_t.c.wake_at,
                db_now().label("now"),
            )
            .where(runs_t.c.status == RunStatus.SLEEPING.value, runs_t.c.wake_at <= db_now())
            .order_by(runs_t.c.wake_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()

        def wake(r: Row[Any]) -> Wakeup | None:
            chain = Chain(r.id, r.audit_seq, r.audit_head)
            chain.append("run.woken", "reaper", r.now, r.step, {"wake_at": r.wake_at.isoformat()})
            moved = transition(
                conn,
                r.id,
                RunStatus.PENDING,
                chain,
                only_from=RunStatus.SLEEPING,
                values={
                    "wake_at": None,
                    "published_at": r.now,
                    "updated_at": r.now,
                    "redispatch_at": r.now + timedelta(seconds=redispatch_after),
                },
            )
            return Wakeup(r.id, r.workflow, r.step, r.seq, r.workflow_version) if moved else None

        sweep.wakeups = _each(conn, due, wake, sweep, "wake")
    return sweep


def overdue_wakeups(db: Database, redispatch_after: float) -> Sweep:
    """Runnable runs whose wake-up may be lost: still pending at their ``redispatch_at``, or
    leases that expired.

    Touches only the publish times (no status change), so a repeated publish is harmless: the
    claim lets exactly one wake-up through. A run still pending after a re-publish is most
    likely queued behind a backlog, not lost: each further re-publish waits as long as the
    run had already waited (R, 2R, 4R ... after it became runnable, at most
    :data:`MAX_REDISPATCH_GAP`). The due time is kept in the indexed ``redispatch_at``, so the
    query returns only what is due, however long the backlog.
    """
    sweep = Sweep()
    due_now = or_(runs_t.c.redispatch_at.is_(None), runs_t.c.redispatch_at <= db_now())
    cond = or_(
        and_(runs_t.c.status == RunStatus.PENDING.value, due_now),
        and_(
            runs_t.c.status == RunStatus.RUNNING.value,
            runs_t.c.lease_expires_at < db_now(),
            due_now,
        ),
    )
    with db.begin() as conn:
        rows = conn.execute(
            select(
                runs_t.c.id,
                runs_t.c.workflow,
                runs_t.c.workflow_version,
                runs_t.c.step,
                runs_t.c.seq,
                runs_t.c.status,
                runs_t.c.updated_at,
                db_now().label("now"),
            )
            .where(cond)
            .order_by(runs_t.c.redispatch_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        if rows:
            conn.execute(
                update(runs_t)
                .where(runs_t.c.id == bindparam("w_id"))
                .values(published_at=bindparam("w_now"), redispatch_at=bindparam("w_next")),
                [
                    {
                        "w_id": r.id,
                        "w_now": r.now,
                        "w_next": r.now + timedelta(seconds=_gap(r, redispatch_after)),
                    }
                    for r in rows
                ],
            )
    sweep.wakeups = [Wakeup(r.id, r.workflow, r.step, r.seq, r.workflow_version) for r in rows]
    return sweep


def _gap(row: Row[Any], first_gap: float) -> float:
    """Seconds until the next re-publish of a run re-published now (see overdue_wakeups)."""
    if row.status != RunStatus.PENDING.value:
        return first_gap
    waited: float = (row.now - row.updated_at).total_seconds()
    return min(max(first_gap, waited), MAX_REDISPATCH_GAP)


def expired_waits(db: Database) -> list[DueWait]:
    """Open waits whose deadline passed."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(waits_t.c.run_id, waits_t.c.id)
            .where(waits_t.c.decided_at.is_(None), waits_t.c.expires_at <= db_now())
            .order_by(waits_t.c.expires_at)
            .limit(BATCH)
        )
        return [from_row(DueWait, r) for r in rows]


def unclaimable_soon(db: Database, run_id: str, seq: int) -> None:
    """A wake-up reached a worker that does not serve the run's version: let the reaper
    re-publish it at its next pass, for a worker that does."""
    with db.begin() as conn:
        conn.execute(
            update(runs_t)
            .where(
                runs_t.c.id == run_id,
                runs_t.c.seq == seq,
                runs_t.c.status == RunStatus.PENDING.value,
            )
            .values(redispatch_at=db_now())
        )
