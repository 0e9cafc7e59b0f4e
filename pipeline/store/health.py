"""Heartbeats: which workers serve what, and when a reaper last made a pass.

Workers refresh their row (and the workflow versions they serve) with their heartbeat; every
reaper pass records itself. ``ravel doctor`` and the workers read them to say when no reaper
runs or no worker serves a workflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import DBAPIError

from models import ReaperRecord, WorkerRecord, WorkflowRecord, table_of
from pipeline import migrate
from pipeline.redact import mask_url
from pipeline.settings import get_settings
from pipeline.store._db import Database, db_now
from pipeline.store.db_errors import MIGRATE_HINT, translate

reapers_t = table_of(ReaperRecord)
workers_t = table_of(WorkerRecord)
workflows_t = table_of(WorkflowRecord)

#: Longest reaper error kept (a traceback's last lines are enough to act on).
MAX_ERROR_CHARS = 4000
#: Seconds between a worker's heartbeats.
HEARTBEAT_SECONDS = 15.0
#: A worker not seen for this long is presumed gone.
WORKER_GONE_AFTER = 4 * HEARTBEAT_SECONDS


def reaper_silence_limit(reaper_interval: float) -> float:
    """Seconds without a reaper pass after which workers and ``ravel doctor`` raise the alarm."""
    return max(30.0, 10 * reaper_interval)


@dataclass(frozen=True)
class SchemaState:
    """Where the database's schema stands against the migrations this version ships.

    Attributes:
        url: the database URL, password masked.
        current: the database's revision; None if it was never migrated.
        head: the newest revision this version of Ravel ships.
        known: whether ``current`` is one of this version's revisions (False: the database
            was migrated by a newer version).
    """

    url: str
    current: str | None
    head: str | None
    known: bool

    @property
    def problem(self) -> str | None:
        """Why this version cannot use the database (one line with what to run), or None."""
        if self.current is None:
            return f"the database at {self.url} is not migrated; {MIGRATE_HINT}"
        if self.known and self.current != self.head:
            return (
                f"the database at {self.url} is at revision {self.current}, older than "
                f"this version of Ravel needs ({self.head}); {MIGRATE_HINT}"
            )
        return None

    @property
    def newer(self) -> bool:
        """Whether a newer version of Ravel migrated the database past this one's head."""
        return self.current is not None and not self.known


@dataclass(frozen=True)
class ReaperHealth:
    """One process that runs the reaper, as of its last pass.

    Attributes:
        name: the process (``host/pid``).
        last_pass_at: when its last pass ended (database clock).
        passes: how many passes it recorded.
        last_report: what the last pass did, e.g. ``{"woken": 0, "expired": 0, ...}``.
        last_error: the last pass error it recorded, if any (kept after later good passes).
        last_error_at: when that error happened.
        age: seconds since ``last_pass_at``, by the database clock.
    """

    name: str
    last_pass_at: datetime
    passes: int
    last_report: dict[str, Any]
    last_error: str | None
    last_error_at: datetime | None
    age: float


@dataclass(frozen=True)
class WorkerHealth:
    """One ``celery worker`` as of its last heartbeat.

    Attributes:
        name: the worker's node name (``celery@host``).
        workflows: ``{workflow: [versions]}`` it serves.
        started_at: when it first recorded itself (or last restarted).
        last_seen_at: its last heartbeat (database clock).
        age: seconds since ``last_seen_at``, by the database clock.
    """

    name: str
    workflows: dict[str, list[int]]
    started_at: datetime
    last_seen_at: datetime
    age: float


def record_reaper_pass(db: Database, name: str, report: dict[str, int], error: str | None) -> None:
    """Record one reaper pass of process ``name``: what it did and the error it hit, if any.

    A pass without error keeps the last recorded error (and its time) for operators to see.
    """
    error = error[-MAX_ERROR_CHARS:] if error else None
    values: dict[str, Any] = {"last_pass_at": db_now(), "last_report": dict(report)}
    if error:
        values.update(last_error=error, last_error_at=db_now())
    ins = db.dialect_insert(reapers_t).values(name=name, passes=1, **values)
    stmt = ins.on_conflict_do_update(
        index_elements=["name"], set_={**values, "passes": reapers_t.c.passes + 1}
    )
    with db.begin() as conn:
        conn.execute(stmt)


def touch_worker(
    db: Database, name: str, workflows: dict[str, list[int]], *, starting: bool = False
) -> None:
    """Heartbeat of worker ``name``: its row, and ``last_seen_at`` of the versions it serves.

    Args:
        db: the run store.
        name: the worker's node name.
        workflows: ``{workflow: [versions]}`` it serves (those versions must be registered).
        starting: the worker (re)started: reset ``started_at``.
    """
    served = {w: sorted(int(v) for v in versions) for w, versions in workflows.items()}
    update_set: dict[str, Any] = {"workflows": served, "last_seen_at": db_now()}
    if starting:
        update_set["started_at"] = db_now()
    stmt = (
        db.dialect_insert(workers_t)
        .values(name=name, workflows=served, started_at=db_now(), last_seen_at=db_now())
        .on_conflict_do_update(index_elements=["name"], set_=update_set)
    )
    pairs = [
        and_(workflows_t.c.name == w, workflows_t.c.version.in_(versions))
        for w, versions in served.items()
        if versions
    ]
    with db.begin() as conn:
        conn.execute(stmt)
        if pairs:
            conn.execute(update(workflows_t).where(or_(*pairs)).values(last_seen_at=db_now()))


def last_reaper_pass(db: Database) -> datetime | None:
    """When the newest reaper pass of any process ended; None if none was ever recorded."""
    with db.engine.connect() as conn:
        # max() keeps the column's type, so SQLite's text comes back as an aware datetime.
        value = conn.execute(select(func.max(reapers_t.c.last_pass_at))).scalar()
    assert value is None or isinstance(value, datetime)
    return value


def reapers(db: Database) -> list[ReaperHealth]:
    """Every process that recorded a reaper pass, most recent pass first."""
    with db.engine.connect() as conn:
        now = conn.execute(select(db_now())).scalar_one()
        rows = conn.execute(select(reapers_t).order_by(reapers_t.c.last_pass_at.desc())).all()
    return [
        ReaperHealth(
            r.name,
            r.last_pass_at,
            int(r.passes),
            dict(r.last_report or {}),
            r.last_error,
            r.last_error_at,
            _age(now, r.last_pass_at),
        )
        for r in rows
    ]


def workers(db: Database) -> list[WorkerHealth]:
    """Every worker that recorded a heartbeat, most recently seen first."""
    with db.engine.connect() as conn:
        now = conn.execute(select(db_now())).scalar_one()
        rows = conn.execute(select(workers_t).order_by(workers_t.c.last_seen_at.desc())).all()
    return [
        WorkerHealth(
            r.name,
            {k: list(v) for k, v in (r.workflows or {}).items()},
            r.started_at,
            r.last_seen_at,
            _age(now, r.last_seen_at),
        )
        for r in rows
    ]


def schema_state(url: str | None = None) -> SchemaState:
    """The database's migration state, without creating anything (not even a SQLite file).

    Raises:
        StoreUnavailable: the database cannot be reached.
    """
    url = url or get_settings().database_url
    head = migrate.head()
    path = migrate.sqlite_file(url)
    if path is not None and not path.exists():
        return SchemaState(mask_url(url), None, head, True)
    try:
        current = migrate.current(url)
    except DBAPIError as exc:
        better = translate(exc)
        if better is None:
            raise
        raise better from exc
    return SchemaState(mask_url(url), current, head, current is None or _is_known(current))


def _is_known(revision: str) -> bool:
    try:
        found = ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_revision(
            revision
        )
    except CommandError:
        return False
    return found is not None


def _age(now: datetime, then: datetime) -> float:
    return max(0.0, (now - then).total_seconds())


__all__ = [
    "HEARTBEAT_SECONDS",
    "WORKER_GONE_AFTER",
    "ReaperHealth",
    "SchemaState",
    "WorkerHealth",
    "last_reaper_pass",
    "reaper_silence_limit",
    "reapers",
    "record_reaper_pass",
    "schema_state",
    "touch_worker",
    "workers",
]
