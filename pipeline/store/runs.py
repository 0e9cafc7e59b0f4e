"""Registering workflows, creating runs, and reading runs, waits, steps and history."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeEngine

from models import Effect, Run, StepRecord, Wait, WorkflowRecord, table_of
from pipeline.status import RunStatus
from pipeline.store import one_statement
from pipeline.store._db import Database, db_now, now_plus
from pipeline.store.audit_log import Chain, audit_t, read_events
from pipeline.store.records import (
    AuditRecord,
    RunRecord,
    StepAttempt,
    WaitRecord,
    WorkflowVersion,
    from_row,
)

runs_t = table_of(Run)
waits_t = table_of(Wait)
steps_t = table_of(StepRecord)
effects_t = table_of(Effect)
workflows_t = table_of(WorkflowRecord)


def upsert_workflow(
    db: Database, name: str, version: int, start_step: str, steps: dict[str, str]
) -> None:
    """Record (or refresh) a workflow version a worker serves, with its steps' queues.

    Other versions of the same name keep their rows: during a rolling deploy both are served.
    """
    ins = db.dialect_insert(workflows_t).values(
        name=name,
        version=version,
        start_step=start_step,
        steps=steps,
        first_seen_at=db_now(),
        last_seen_at=db_now(),
    )
    stmt = ins.on_conflict_do_update(
        index_elements=["name", "version"],
        set_={"start_step": start_step, "steps": steps, "last_seen_at": db_now()},
    )
    with db.begin() as conn:
        conn.execute(stmt)


#: A workflow version last seen longer ago than this is no longer assumed to be served.
SERVED_RECENTLY = 300.0


def get_workflow(db: Database, name: str, version: int | None = None) -> WorkflowVersion | None:
    """A registered workflow version, or None.

    Without ``version``: the newest version seen in the last :data:`SERVED_RECENTLY` seconds
    (what new runs start on), else the newest ever recorded.
    """
    query = select(workflows_t, _fresh()).where(workflows_t.c.name == name)
    if version is not None:
        query = query.where(workflows_t.c.version == version)
    with db.engine.connect() as conn:
        rows = list(conn.execute(query.order_by(workflows_t.c.version.desc())))
    found = [from_row(WorkflowVersion, r) for r in rows]
    best = [w for w in found if w.fresh] or found
    return best[0] if best else None


def version_served_recently(db: Database, name: str, version: int) -> bool:
    """Whether some worker serving this workflow version was seen recently."""
    found = get_workflow(db, name, version)
    return bool(found is not None and found.fresh)


def list_workflows(db: Database) -> list[WorkflowVersion]:
    """All registered workflow versions, by name then newest version first."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(workflows_t, _fresh()).order_by(workflows_t.c.name, workflows_t.c.version.desc())
        )
        return [from_row(WorkflowVersion, r) for r in rows]


def _fresh() -> Any:
    return (workflows_t.c.last_seen_at >= now_plus(-SERVED_RECENTLY)).label("fresh")


def create_run(
    db: Database,
    *,
    workflow: str,
    version: int,
    step: str,
    input: dict[str, Any],
    idempotency_key: str | None,
    actor: str,
    redispatch_after: float,
) -> tuple[str, bool]:
    """Insert a pending run (the committed row is the outbox); return (id, created)."""
    if idempotency_key is not None:
        existing = _run_id_for_key(db, idempotency_key)
        if existing is not None:
            return existing, False
    run_id = str(uuid.uuid4())
    now = db.clock()
    chain = Chain(run_id, 0, "")
    chain.append(
        "run.started",
        actor,
        now,
        step,
        {"workflow": workflow, "version": version, "idempotency_key": idempotency_key},
    )
    values = {
        "id": run_id,
        "workflow": workflow,
        "workflow_version": version,
        "step": step,
        "input": input,
        "idempotency_key": idempotency_key,
        "now": now,
        "redispatch_at": now + timedelta(seconds=redispatch_after),
        "audit_seq": chain.seq,
        "audit_head": chain.head,
    }
    try:
        if db.is_sqlite:
            row = {**values, **_NEW_RUN, "state": dict(input)}
            row.update(published_at=row.pop("now"), created_at=now, updated_at=now)
            with db.begin() as conn:
                conn.execute(insert(runs_t).values(**row))
                chain.flush(conn)
        else:  # the run and its first audit event: one statement, one round trip
            head, types = _insert_run_sql()
            with db.autocommit() as conn:
                one_statement.execute(conn, head, types, values, [(audit_t, chain.take())])
    except IntegrityError:
        # Two callers raced with the same idempotency key: the first insert won.
        if idempotency_key is None:
            raise
        existing = _run_id_for_key(db, idempotency_key)
        if existing is None:
            raise
        return existing, False
    return run_id, True


#: What every new run starts with, whatever its workflow and input.
_NEW_RUN: dict[str, Any] = {
    "status": RunStatus.PENDING.value,
    "seq": 0,
    "attempt": 0,
    "recorded_attempt": 0,
    "retry_base": 0,
    "fencing": 0,
    "version": 0,
    "message_count": 0,
}


@functools.cache
def _insert_run_sql() -> tuple[str, dict[str, TypeEngine[Any]]]:
    """The ``INSERT`` of a new run on PostgreSQL and the types of its parameters.

    It is on every ``start_run``, so it binds only what differs from run to run: the
    constants of :data:`_NEW_RUN` are literals in its text, the state is the input parameter
    again and the three timestamps one ``now`` parameter (each value encoded and sent once).
    """
    # column: its parameter
    bound = {
        "id": "id",
        "workflow": "workflow",
        "workflow_version": "workflow_version",
        "step": "step",
        "input": "input",
        "state": "input",
        "idempotency_key": "idempotency_key",
        "published_at": "now",
        "created_at": "now",
        "updated_at": "now",
        "redispatch_at": "redispatch_at",
        "audit_seq": "audit_seq",
        "audit_head": "audit_head",
    }
    values = [f":{param}" for param in bound.values()]
    values += [f"'{c}'" if isinstance(c, str) else str(int(c)) for c in _NEW_RUN.values()]
    columns = ", ".join([*bound, *_NEW_RUN])
    head = f"INSERT INTO {runs_t.name} ({columns}) VALUES ({', '.join(values)})"
    # A parameter bound to several columns is bound to columns of one type.
    return head, {param: runs_t.c[column].type for column, param in bound.items()}


def find_by_idempotency_key(db: Database, key: str) -> str | None:
    """The id of the run started with this idempotency key, or None."""
    return _run_id_for_key(db, key)


def _run_id_for_key(db: Database, key: str) -> str | None:
    with db.engine.connect() as conn:
        found = conn.execute(select(runs_t.c.id).where(runs_t.c.idempotency_key == key)).first()
    return None if found is None else str(found.id)


def _usage_columns() -> tuple[Any, Any]:
    tokens = (
        select(func.coalesce(func.sum(effects_t.c.tokens), 0))
        .where(effects_t.c.run_id == runs_t.c.id)
        .scalar_subquery()
        .label("tokens")
    )
    cost = (
        select(func.coalesce(func.sum(effects_t.c.cost_usd), 0.0))
        .where(effects_t.c.run_id == runs_t.c.id)
        .scalar_subquery()
        .label("cost_usd")
    )
    return tokens, cost


def get_run(db: Database, run_id: str) -> tuple[RunRecord, WaitRecord | None] | None:
    """A run with its token totals, and its open wait; None if there is no such run."""
    with db.engine.connect() as conn:
        run = conn.execute(select(runs_t, *_usage_columns()).where(runs_t.c.id == run_id)).first()
        if run is None:
            return None
        wait = None
        if run.status == RunStatus.WAITING.value:
            wait = conn.execute(
                select(waits_t).where(waits_t.c.run_id == run_id, waits_t.c.decided_at.is_(None))
            ).first()
    return from_row(RunRecord, run), None if wait is None else from_row(WaitRecord, wait)


def list_runs(
    db: Database,
    status: str | None,
    workflow: str | None,
    limit: int,
    *,
    before: tuple[datetime, str] | None = None,
) -> list[tuple[RunRecord, WaitRecord | None]]:
    """Runs, newest first (ties by id), with their open waits.

    ``before``: only runs after this (created_at, id) in that order: the position a page of
    the HTTP API's cursor pagination ended at.
    """
    query = (
        select(runs_t, *_usage_columns())
        .order_by(runs_t.c.created_at.desc(), runs_t.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        at, run_id = before
        query = query.where(
            or_(runs_t.c.created_at < at, and_(runs_t.c.created_at == at, runs_t.c.id < run_id))
        )
    if status is not None:
        query = query.where(runs_t.c.status == status)
    if workflow is not None:
        query = query.where(runs_t.c.workflow == workflow)
    with db.engine.connect() as conn:
        runs = list(conn.execute(query))
        ids = [r.id for r in runs if r.status == RunStatus.WAITING.value]
        waits = {}
        if ids:
            for w in conn.execute(
                select(waits_t).where(waits_t.c.run_id.in_(ids), waits_t.c.decided_at.is_(None))
            ):
                waits[w.run_id] = from_row(WaitRecord, w)
    return [(from_row(RunRecord, r), waits.get(r.id)) for r in runs]


def history(db: Database, run_id: str) -> list[AuditRecord]:
    """The run's audit events, oldest first."""
    with db.engine.connect() as conn:
        return [from_row(AuditRecord, r) for r in read_events(conn, run_id)]


def step_records(db: Database, run_id: str) -> list[StepAttempt]:
    """Every recorded step attempt of the run, in order."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(steps_t)
            .where(steps_t.c.run_id == run_id)
            .order_by(steps_t.c.seq, steps_t.c.attempt)
        )
        return [from_row(StepAttempt, r) for r in rows]


def run_exists(db: Database, run_id: str) -> bool:
    """Whether a run with that id exists."""
    with db.engine.connect() as conn:
        return conn.execute(select(runs_t.c.id).where(runs_t.c.id == run_id)).first() is not None
