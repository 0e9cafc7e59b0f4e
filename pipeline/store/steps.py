"""The step's hot path: claim a run, renew the lease, commit the outcome.

Round trips per step on PostgreSQL: one autocommit ``UPDATE ... RETURNING`` to claim, and
one autocommit statement to commit: the fenced ``UPDATE`` of the run with the ``INSERT``s
of its step record(s), audit events, and messages or a wait when the step produced them, in
one data-modifying CTE (see :mod:`pipeline.store.transition`). Parking on an event takes a
transaction, to deliver an event that arrived first.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.sql.dml import Update

from models import InboundEvent, Message, Run, StepRecord, Wait, table_of
from pipeline.status import RunStatus, sources
from pipeline.store._db import Database, db_now, now_plus
from pipeline.store.audit_log import Chain
from pipeline.store.transition import Fence, transition

runs_t = table_of(Run)
steps_t = table_of(StepRecord)
messages_t = table_of(Message)
waits_t = table_of(Wait)
inbound_t = table_of(InboundEvent)

_CLAIM_RETURNING = (
    runs_t.c.workflow,
    runs_t.c.workflow_version,
    runs_t.c.step,
    runs_t.c.seq,
    runs_t.c.attempt,
    runs_t.c.recorded_attempt,
    runs_t.c.retry_base,
    runs_t.c.fencing,
    runs_t.c.version,
    runs_t.c.state,
    runs_t.c.wait_result,
    runs_t.c.audit_seq,
    runs_t.c.audit_head,
    runs_t.c.message_count,
    runs_t.c.updated_at,
)


def _claimable() -> ColumnElement[bool]:
    """The statuses a claim may take a run from, from the transition table: running only once
    its lease has expired (a takeover)."""
    return or_(
        *(
            and_(runs_t.c.status == s, runs_t.c.lease_expires_at < db_now())
            if s == RunStatus.RUNNING.value
            else runs_t.c.status == s
            for s in sources(RunStatus.RUNNING)
        )
    )


def _claim_statement(*, one_version: bool) -> Update:
    """The claim's UPDATE ... RETURNING. ``one_version``: the run must be of the one (workflow,
    version) the wake-up names (the worker checked it serves it); otherwise of any pair in
    ``w_served``. The first has no expanding IN, which SQLAlchemy re-renders on every call."""
    if one_version:
        served = and_(
            runs_t.c.workflow == bindparam("w_workflow"),
            runs_t.c.workflow_version == bindparam("w_version"),
        )
    else:
        served = tuple_(runs_t.c.workflow, runs_t.c.workflow_version).in_(
            bindparam("w_served", expanding=True)
        )
    return (
        update(runs_t)
        .where(
            runs_t.c.id == bindparam("w_id"),
            runs_t.c.seq == bindparam("w_seq"),
            runs_t.c.step == bindparam("w_step"),
            # Only versions this worker serves: a run of another version is left for a worker
            # that serves it (rolling deploys never fail a run).
            served,
            _claimable(),
        )
        .values(
            status=RunStatus.RUNNING.value,
            fencing=runs_t.c.fencing + 1,
            attempt=runs_t.c.attempt + 1,
            lease_owner=bindparam("w_owner"),
            lease_expires_at=db_now(bindparam("w_lease")),
            # No re-publish is due while the lease holds; once it expires the reaper
            # re-publishes at its next pass (recovery takes the lease plus a reaper interval,
            # whatever RAVEL_REDISPATCH_AFTER is).
            redispatch_at=None,
            updated_at=db_now(),
        )
        .returning(*_CLAIM_RETURNING)
    )


# Built once: constructing a Core statement per call costs more than the round trip itself.
_CLAIM_ONE = _claim_statement(one_version=True)
_CLAIM_ANY = _claim_statement(one_version=False)


@dataclass
class Claim:
    """A run leased to this process for one step attempt."""

    run_id: str
    workflow: str
    workflow_version: int
    step: str
    seq: int
    attempt: int
    recorded_attempt: int
    retry_base: int
    fencing: int
    version: int
    state: dict[str, Any]
    wait_result: dict[str, Any] | None
    audit_seq: int
    audit_head: str
    message_count: int
    owner: str  # the worker, as step records and audit events name it
    lease_owner: str  # the owner plus a token unique to this claim: the fence's
    claimed_at: datetime
    _mono: float = field(default_factory=time.monotonic)

    def clock(self) -> datetime:
        """The database clock now, as read at claim time plus local monotonic time since.

        Saves a round trip per commit while staying on the database's clock: only elapsed
        time is measured locally, and a monotonic clock does not skew.
        """
        return self.claimed_at + timedelta(seconds=time.monotonic() - self._mono)


def claim(
    db: Database,
    run_id: str,
    seq: int,
    step: str,
    lease_seconds: float,
    owner: str,
    served: list[tuple[str, int]],
) -> Claim | None:
    """Lease the run for one attempt of ``step`` at ``seq``, or return None.

    None means there is nothing to do for this wake-up: a duplicate or stale message, a live
    lease elsewhere, a run that is parked, finished or cancelled, or a run whose (workflow,
    version) is not in ``served`` (what this worker serves, for this wake-up's task).
    """
    # Unique per claim: the fence of everything the attempt writes. A claim does not wait
    # for the WAL flush, so a database crash can lose it; the run's next claim then gets the
    # same fencing token, but not this owner, and the lost claimant's writes match nothing.
    lease_owner = f"{owner}#{secrets.token_hex(4)}"
    params: dict[str, Any] = {
        "w_id": run_id,
        "w_seq": seq,
        "w_step": step,
        "w_owner": lease_owner,
        "w_lease": float(lease_seconds),
    }
    if len(served) == 1:
        statement = _CLAIM_ONE
        params["w_workflow"], params["w_version"] = served[0]
    else:
        statement = _CLAIM_ANY
        params["w_served"] = served
    with db.relaxed() as conn:
        row = conn.execute(statement, params).first()
    if row is None:
        return None
    return Claim(
        run_id=run_id,
        workflow=row.workflow,
        workflow_version=row.workflow_version,
        step=row.step,
        seq=row.seq,
        attempt=row.attempt,
        recorded_attempt=row.recorded_attempt,
        retry_base=row.retry_base,
        fencing=row.fencing,
        version=row.version,
        state=row.state,
        wait_result=row.wait_result,
        audit_seq=row.audit_seq,
        audit_head=row.audit_head,
        message_count=row.message_count,
        owner=owner,
        lease_owner=lease_owner,
        claimed_at=row.updated_at,
    )


def renew_lease(db: Database, run_id: str, fencing: int, owner: str, lease_seconds: float) -> bool:
    """Extend a held lease; False means it was lost (cancelled, or taken over)."""
    stmt = (
        update(runs_t)
        .where(
            runs_t.c.id == run_id,
            runs_t.c.fencing == fencing,
            runs_t.c.lease_owner == owner,
            runs_t.c.status == RunStatus.RUNNING.value,
        )
        .values(lease_expires_at=now_plus(lease_seconds))
    )
    with db.relaxed() as conn:
        return conn.execute(stmt).rowcount == 1


@dataclass
class WaitSpec:
    """A wait to open as the run parks."""

    kind: str
    then: str
    timeout: float | None
    prompt: str | None = None
    approvers: list[str] | None = None
    data: dict[str, Any] | None = None
    name: str | None = None


@dataclass
class CommitPlan:
    """Everything one step attempt writes, in one transaction."""

    status: RunStatus
    step: str
    advance: bool
    step_status: str
    outcome: str
    events: list[tuple[str, dict[str, Any]]]
    state: dict[str, Any] | None = None
    result: Any = None
    error: str | None = None
    step_error: str | None = None
    step_traceback: str | None = None
    wake_after: float | None = None
    wait: WaitSpec | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Committed:
    """What a successful commit left behind: the status and seq to publish a wake-up for."""

    status: RunStatus
    step: str
    seq: int
    wait_id: str | None = None


def commit(db: Database, c: Claim, plan: CommitPlan, redispatch_after: float) -> Committed | None:
    """Write a step attempt's outcome, fenced by the claim; None if the lease was lost.

    ``redispatch_after``: when the reaper re-publishes the next wake-up if nobody claimed it.
    """
    at = c.clock()
    seq = c.seq + 1 if plan.advance else c.seq
    chain = Chain(c.run_id, c.audit_seq, c.audit_head)
    step_rows = _lost_attempts(c, at, chain)
    chain.append("step.started", c.owner, c.claimed_at, c.step, {"attempt": c.attempt})
    for kind, data in plan.events:
        chain.append(kind, c.owner, at, c.step, data)
    step_rows.append(
        _step_row(
            c, c.attempt, plan.step_status, plan.outcome, plan.step_error, at, plan.step_traceback
        )
    )
    wait_id = str(uuid.uuid4()) if plan.wait else None
    values = _run_values(c, plan, at, seq, redispatch_after)
    inserts = [(steps_t, step_rows), (messages_t, _message_rows(c, plan.messages, at))]
    if plan.wait is not None:
        assert wait_id is not None
        inserts.append((waits_t, [_wait_row(c, plan.wait, wait_id, seq, at)]))
    fence = Fence(c.fencing, c.version, c.lease_owner)
    if plan.wait is None or plan.wait.kind != "event":
        # On PostgreSQL the whole commit is one statement: autocommit spares the round trips
        # of BEGIN and COMMIT.
        with db.begin() if db.is_sqlite else db.autocommit() as conn:
            won = transition(
                conn, c.run_id, plan.status, chain, values=values, fence=fence, inserts=inserts
            )
        return Committed(plan.status, plan.step, seq, wait_id) if won else None
    # Parking on an event: an event that arrived first is delivered in the same transaction,
    # which holds the run row locked from the UPDATE on.
    assert plan.wait is not None and wait_id is not None
    with db.begin() as conn:
        if not transition(
            conn, c.run_id, plan.status, chain, values=values, fence=fence, inserts=inserts
        ):
            conn.rollback()
            return None
        if _consume_buffered_event(conn, c.run_id, wait_id, plan.wait, at):
            return Committed(RunStatus.PENDING, plan.step, seq, wait_id)
    return Committed(plan.status, plan.step, seq, wait_id)


def _run_values(
    c: Claim, plan: CommitPlan, at: datetime, seq: int, redispatch_after: float
) -> dict[str, Any]:
    """The run row's new values for this commit (status, version and audit: the transition)."""
    values: dict[str, Any] = {
        "step": plan.step,
        "seq": seq,
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": at,
        "recorded_attempt": 0 if plan.advance else c.attempt,
    }
    # A finished run keeps the attempt that finished it; the next step starts from zero.
    if plan.advance and not plan.status.is_final:
        values.update(attempt=0, retry_base=0, wait_result=None)
    elif plan.advance:
        values.update(recorded_attempt=c.attempt, wait_result=None)
    if plan.state is not None:
        values["state"] = plan.state
    if plan.status is RunStatus.SUCCEEDED:
        values["result"] = plan.result
    if plan.error is not None:
        values["error"] = plan.error
    if plan.wake_after is not None:
        values["wake_at"] = at + timedelta(seconds=plan.wake_after)
    if plan.status is RunStatus.PENDING:
        values["published_at"] = at
        values["redispatch_at"] = at + timedelta(seconds=redispatch_after)
    if plan.messages:
        values["message_count"] = c.message_count + len(plan.messages)
    return values


def _lost_attempts(c: Claim, at: datetime, chain: Chain) -> list[dict[str, Any]]:
    """Step records and audit events for attempts that died before committing."""
    rows = []
    for attempt in range(c.recorded_attempt + 1, c.attempt):
        rows.append(_step_row(c, attempt, "lost", None, "the worker died or lost its lease", at))
        chain.append("step.lost", c.owner, at, c.step, {"attempt": attempt})
    return rows


def _step_row(
    c: Claim,
    attempt: int,
    status: str,
    outcome: str | None,
    error: str | None,
    at: datetime,
    traceback: str | None = None,
) -> dict[str, Any]:
    current = attempt == c.attempt  # else an attempt that died before committing
    return {
        "run_id": c.run_id,
        "seq": c.seq,
        "attempt": attempt,
        "step": c.step,
        "status": status,
        "outcome": outcome,
        "worker": c.owner if current else None,
        "error": error,
        "traceback": traceback,
        # The checkpoint this attempt started from (a fork from this step starts there).
        "state_before": c.state if current else None,
        "wait_result": c.wait_result if current else None,
        "message_count": c.message_count if current else None,
        "started_at": c.claimed_at if current else None,
        "finished_at": at,
    }


def _message_rows(c: Claim, messages: list[dict[str, Any]], at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "run_id": c.run_id,
            "idx": c.message_count + i,
            "seq": c.seq,
            "message": m,
            "created_at": at,
        }
        for i, m in enumerate(messages, start=1)
    ]


def _wait_row(c: Claim, spec: WaitSpec, wait_id: str, seq: int, at: datetime) -> dict[str, Any]:
    expires = at + timedelta(seconds=spec.timeout) if spec.timeout is not None else None
    return {
        "id": wait_id,
        "run_id": c.run_id,
        "seq": seq,
        "kind": spec.kind,
        "name": spec.name,
        "prompt": spec.prompt,
        "approvers": spec.approvers,
        "data": spec.data,
        "then_step": spec.then,
        "expires_at": expires,
        "created_at": at,
    }


def _consume_buffered_event(
    conn: Connection, run_id: str, wait_id: str, spec: WaitSpec, at: datetime
) -> bool:
    """Deliver an event that arrived before the run parked on it (it is kept, never lost).

    The run row is locked by this transaction's UPDATE, and ``send_event`` locks it too, so
    an event is either seen here or finds the open wait itself.
    """
    # Imported here: decisions live with the operator actions, which import this module.
    from pipeline.store.decisions import decide_locked

    ev = conn.execute(
        select(inbound_t)
        .where(
            inbound_t.c.run_id == run_id,
            inbound_t.c.name == spec.name,
            inbound_t.c.consumed_at.is_(None),
        )
        .order_by(inbound_t.c.id)
        .limit(1)
    ).first()
    if ev is None:
        return False
    conn.execute(
        update(inbound_t).where(inbound_t.c.id == ev.id).values(consumed_at=at, wait_id=wait_id)
    )
    decide_locked(
        conn,
        run_id,
        wait_id,
        "received",
        ev.actor or "system",
        ev.payload,
        extra={"received_at": ev.received_at.isoformat()},
    )
    return True
