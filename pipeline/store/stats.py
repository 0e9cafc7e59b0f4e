"""What the metrics endpoint reads from the database at scrape time.

Counted from the rows themselves, so the numbers are exact whichever process (worker, web
app, CLI, a Django view) changed them, and survive restarts. Each query is one aggregate over
an indexed column (the open waits, the due times and the status index).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from models import ReaperRecord, Run, Wait, table_of
from pipeline.status import RunStatus
from pipeline.store._db import Database, db_now

runs_t = table_of(Run)
waits_t = table_of(Wait)
reapers_t = table_of(ReaperRecord)


@dataclass(frozen=True)
class Overdue:
    """Runs past a due time: how many, and the earliest of their due times."""

    count: int
    oldest_due: datetime | None


@dataclass(frozen=True)
class Snapshot:
    """The database's view of the runs, as of ``now`` (the database clock).

    Attributes:
        now: the database clock when the snapshot was read.
        runs: (workflow, status, count) for every workflow and status that has runs.
        parked: (workflow, wait kind, count, oldest wait's creation) of open waits.
        overdue: per due kind (``pending``: runnable since; ``wake``: a sleep's or retry's
            ``wake_at``; ``lease``: a running lease's expiry; ``wait_expiry``: an open wait's
            deadline), the runs past it.
        reaper_last_pass: the latest pass of any reaper, or None if none ever ran.
        approvals: (workflow, decision, count) of decided approval waits.
    """

    now: datetime
    runs: list[tuple[str, str, int]]
    parked: list[tuple[str, str, int, datetime]]
    overdue: dict[str, Overdue]
    reaper_last_pass: datetime | None
    approvals: list[tuple[str, str, int]]


def snapshot(db: Database) -> Snapshot:
    """Read the numbers the metrics endpoint exposes, in one connection."""
    with db.engine.connect() as conn:
        now = conn.execute(select(db_now())).scalar_one()
        runs = [
            (r[0], r[1], int(r[2]))
            for r in conn.execute(
                select(runs_t.c.workflow, runs_t.c.status, func.count()).group_by(
                    runs_t.c.workflow, runs_t.c.status
                )
            )
        ]
        open_wait = waits_t.c.decided_at.is_(None)
        parked = [
            (r[0], r[1], int(r[2]), r[3])
            for r in conn.execute(
                select(
                    runs_t.c.workflow, waits_t.c.kind, func.count(), func.min(waits_t.c.created_at)
                )
                .select_from(waits_t.join(runs_t, runs_t.c.id == waits_t.c.run_id))
                .where(open_wait)
                .group_by(runs_t.c.workflow, waits_t.c.kind)
            )
        ]
        approvals = [
            (r[0], r[1], int(r[2]))
            for r in conn.execute(
                select(runs_t.c.workflow, waits_t.c.decision, func.count())
                .select_from(waits_t.join(runs_t, runs_t.c.id == waits_t.c.run_id))
                .where(waits_t.c.kind == "approval", waits_t.c.decided_at.is_not(None))
                .group_by(runs_t.c.workflow, waits_t.c.decision)
            )
        ]
        last_pass = conn.execute(select(func.max(reapers_t.c.last_pass_at))).scalar()
        overdue = _overdue(conn)
    return Snapshot(now, runs, parked, overdue, last_pass, approvals)


def _overdue(conn: Connection) -> dict[str, Overdue]:
    def past(table: Any, due: Any, *where: Any) -> Overdue:
        row = conn.execute(
            select(func.count(), func.min(due)).select_from(table).where(*where)
        ).one()
        return Overdue(int(row[0]), row[1])

    status = runs_t.c.status
    return {
        "pending": past(runs_t, runs_t.c.updated_at, status == RunStatus.PENDING.value),
        "wake": past(
            runs_t,
            runs_t.c.wake_at,
            status == RunStatus.SLEEPING.value,
            runs_t.c.wake_at <= db_now(),
        ),
        "lease": past(
            runs_t,
            runs_t.c.lease_expires_at,
            status == RunStatus.RUNNING.value,
            runs_t.c.lease_expires_at < db_now(),
        ),
        "wait_expiry": past(
            waits_t,
            waits_t.c.expires_at,
            waits_t.c.decided_at.is_(None),
            waits_t.c.expires_at <= db_now(),
        ),
    }
