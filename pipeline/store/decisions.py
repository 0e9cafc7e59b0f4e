"""Operator and approver actions: decide a wait, send an event, cancel, retry.

Each is one short transaction that first locks the run row, so it serialises with the step
commit and with each other; every status change is a compare-and-set checked against the
transition table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, or_, select, update

from models import InboundEvent, Run, Wait, table_of
from pipeline import errors
from pipeline.status import RunStatus, sources
from pipeline.store._db import Database, db_now
from pipeline.store.audit_log import Chain

runs_t = table_of(Run)
waits_t = table_of(Wait)
inbound_t = table_of(InboundEvent)

DECISION_EVENT = {
    "approved": "wait.approved",
    "rejected": "wait.rejected",
    "expired": "wait.expired",
    "received": "event.received",
}


@dataclass(frozen=True)
class Wakeup:
    """A wake-up to publish once the transaction that made the run runnable has committed."""

    run_id: str
    workflow: str
    step: str
    seq: int


def lock_run(conn: Connection, run_id: str) -> Row[Any]:
    """The run row, locked for this transaction, with the database clock as ``now``."""
    row = conn.execute(
        select(runs_t, db_now().label("now")).where(runs_t.c.id == run_id).with_for_update()
    ).first()
    if row is None:
        raise errors.RunNotFound(f"no run with id {run_id}; list runs with `ravel runs list`")
    return row


def _set_status(
    conn: Connection, run: Row[Any], target: RunStatus, chain: Chain, **values: Any
) -> None:
    """Compare-and-set the run's status; the row is locked, so a miss is a bug, not a race."""
    result = conn.execute(
        update(runs_t)
        .where(runs_t.c.id == run.id, runs_t.c.status.in_(sources(target)))
        .values(
            status=target.value,
            version=runs_t.c.version + 1,
            updated_at=run.now,
            audit_seq=chain.seq,
            audit_head=chain.head,
            **values,
        )
    )
    if result.rowcount != 1:
        raise errors.InvalidTransition(f"run {run.id} cannot move from {run.status} to {target}")
    chain.flush(conn)


def decide_locked(
    conn: Connection,
    run_id: str,
    wait_id: str,
    decision: str,
    actor: str,
    data: Any,
    extra: dict[str, Any] | None = None,
) -> Wakeup | None:
    """Decide an open wait of a run and make the run runnable; None if the wait was not open.

    The wait's UPDATE is the single point that decides: it matches only while the wait is
    undecided and, unless this decision *is* the expiry, only before its deadline.
    """
    run = lock_run(conn, run_id)
    guard = [waits_t.c.id == wait_id, waits_t.c.decided_at.is_(None)]
    if decision != "expired":
        guard.append(or_(waits_t.c.expires_at.is_(None), waits_t.c.expires_at > run.now))
    won = conn.execute(
        update(waits_t)
        .where(*guard)
        .values(decided_at=run.now, decision=decision, actor=actor, decision_data=data)
        .returning(waits_t.c.kind, waits_t.c.then_step)
    ).first()
    if won is None:
        return None
    result = {
        "kind": won.kind,
        "decision": decision,
        "actor": actor,
        "data": data,
        "at": run.now.isoformat(),
        "wait_id": wait_id,
    }
    chain = Chain(run.id, run.audit_seq, run.audit_head)
    chain.append(
        DECISION_EVENT[decision], actor, run.now, won.then_step,
        {"wait_id": wait_id, "data": data, **(extra or {})},
    )
    _set_status(
        conn, run, RunStatus.PENDING, chain,
        step=won.then_step, wait_result=result, published_at=run.now,
    )
    return Wakeup(run.id, run.workflow, won.then_step, run.seq)


@dataclass(frozen=True)
class Decision:
    """The outcome of an approve/reject call."""

    wait_id: str
    decision: str
    actor: str | None
    at: datetime
    wakeup: Wakeup | None
    repeated: bool = False
    #: raise this after publishing ``wakeup`` (the decision came after the deadline: the
    #: call expired the wait, which made the run runnable, and is refused)
    refusal: errors.PipelineError | None = None


def _latest_wait(conn: Connection, run_id: str, wait_id: str | None) -> Row[Any] | None:
    query = select(waits_t).where(waits_t.c.run_id == run_id)
    if wait_id is not None:
        query = query.where(waits_t.c.id == wait_id)
    return conn.execute(query.order_by(waits_t.c.created_at.desc()).limit(1)).first()


def _settled(wait: Row[Any], decision: str) -> Decision:
    """A decision on a wait already decided: the same one repeats, anything else is refused."""
    if wait.decision == decision:
        return Decision(wait.id, decision, wait.actor, wait.decided_at, None, repeated=True)
    if wait.decision == "expired":
        raise errors.WaitExpired(
            f"the wait {wait.id} expired at {wait.decided_at:%Y-%m-%d %H:%M:%S} UTC before "
            f"it was {decision}; the run went on with decision 'expired'"
        )
    raise errors.WaitAlreadyDecided(
        f"the wait {wait.id} was already {wait.decision} by {wait.actor}; a decision cannot be "
        f"changed (this call tried: {decision})"
    )


def decide(
    db: Database, run_id: str, decision: str, actor: str, data: Any, wait_id: str | None
) -> Decision:
    """Approve or reject the run's open approval: exactly one decision wins."""
    refusal: errors.PipelineError | None = None
    with db.begin() as conn:
        run = lock_run(conn, run_id)
        wait = conn.execute(
            select(waits_t).where(waits_t.c.run_id == run_id, waits_t.c.decided_at.is_(None))
        ).first()
        if wait is None or (wait_id is not None and wait.id != wait_id):
            return _no_open_wait(conn, run, decision, wait_id)
        if wait.kind != "approval":
            raise errors.NotWaiting(
                f"run {run_id} waits for the event {wait.name!r}, not an approval; "
                "send it with send_event"
            )
        approvers = list(wait.approvers or [])
        if actor not in approvers:
            chain = Chain(run.id, run.audit_seq, run.audit_head)
            chain.append("wait.refused", actor, run.now, run.step,
                         {"wait_id": wait.id, "decision": decision, "why": "not an approver"})
            conn.execute(update(runs_t).where(runs_t.c.id == run.id)
                         .values(audit_seq=chain.seq, audit_head=chain.head))
            chain.flush(conn)
            refusal = errors.NotAuthorized(
                f"{actor!r} may not decide this approval; approvers are: {', '.join(approvers)}"
            )
        elif wait.expires_at is not None and wait.expires_at <= run.now:
            wakeup = decide_locked(conn, run_id, wait.id, "expired", "system", None)
            expired = errors.WaitExpired(
                f"the approval expired at {wait.expires_at:%Y-%m-%d %H:%M:%S} UTC; "
                "the run goes on with decision 'expired'"
            )
            return Decision(wait.id, "expired", "system", run.now, wakeup, refusal=expired)
        else:
            wakeup = decide_locked(conn, run_id, wait.id, decision, actor, data)
            return Decision(wait.id, decision, actor, run.now, wakeup)
    # Raised after the commit: the refusal itself is on the audit record.
    raise refusal


def _no_open_wait(
    conn: Connection, run: Row[Any], decision: str, wait_id: str | None
) -> Decision:
    last = _latest_wait(conn, run.id, wait_id)
    if wait_id is not None and last is None:
        raise errors.WaitNotFound(
            f"run {run.id} has no wait {wait_id}; the screen may be stale, reload it"
        )
    if last is not None and last.decided_at is not None:
        if last.decision == "cancelled" or run.status == RunStatus.CANCELLED:
            raise errors.InvalidTransition(
                f"run {run.id} was cancelled; its approval can no longer be decided"
            )
        if wait_id is not None or run.status != RunStatus.WAITING:
            return _settled(last, decision)
    raise errors.NotWaiting(
        f"run {run.id} is {run.status}, not waiting for an approval; nothing to {decision[:-1]}"
    )


def send_event(db: Database, run_id: str, name: str, payload: Any, actor: str) -> Wakeup | None:
    """Deliver an event to the run's open event wait, or keep it until the run parks on it."""
    with db.begin() as conn:
        run = lock_run(conn, run_id)
        if RunStatus(run.status).is_final:
            raise errors.InvalidTransition(
                f"run {run_id} is {run.status}; events can only be sent to live runs"
            )
        wait = conn.execute(
            select(waits_t).where(
                waits_t.c.run_id == run_id,
                waits_t.c.decided_at.is_(None),
                waits_t.c.kind == "event",
                waits_t.c.name == name,
            )
        ).first()
        consumed = wait is not None
        conn.execute(
            insert(inbound_t).values(
                run_id=run_id, name=name, payload=payload, actor=actor, received_at=run.now,
                consumed_at=run.now if consumed else None, wait_id=wait.id if wait else None,
            )
        )
        if wait is None:
            return None
        return decide_locked(conn, run_id, wait.id, "received", actor, payload)


def cancel(db: Database, run_id: str, actor: str, reason: str) -> bool:
    """Cancel a live run; False if it was already cancelled. Closes its open wait."""
    with db.begin() as conn:
        run = lock_run(conn, run_id)
        status = RunStatus(run.status)
        if status is RunStatus.CANCELLED:
            return False
        if not status.is_live:
            raise errors.InvalidTransition(
                f"run {run_id} already {status}; only live runs can be cancelled"
            )
        conn.execute(
            update(waits_t)
            .where(waits_t.c.run_id == run_id, waits_t.c.decided_at.is_(None))
            .values(decided_at=run.now, decision="cancelled", actor=actor)
        )
        chain = Chain(run.id, run.audit_seq, run.audit_head)
        chain.append("run.cancelled", actor, run.now, run.step,
                     {"reason": reason, "from": run.status})
        # Bumping the fencing token makes a step still running for this run commit nothing.
        _set_status(
            conn, run, RunStatus.CANCELLED, chain,
            error=f"cancelled by {actor}: {reason}", fencing=runs_t.c.fencing + 1,
            lease_owner=None, lease_expires_at=None, wake_at=None,
        )
    return True


def retry(db: Database, run_id: str, actor: str, state_patch: dict[str, Any] | None) -> Wakeup:
    """Move a failed run back to pending at the step that failed, optionally patching state."""
    with db.begin() as conn:
        run = lock_run(conn, run_id)
        if run.status != RunStatus.FAILED:
            raise errors.InvalidTransition(
                f"run {run_id} is {run.status}; only failed runs can be retried"
            )
        state = dict(run.state)
        state.update(state_patch or {})
        chain = Chain(run.id, run.audit_seq, run.audit_head)
        chain.append("run.retried", actor, run.now, run.step,
                     {"patched_keys": sorted(state_patch or {}), "previous_error": run.error})
        _set_status(
            conn, run, RunStatus.PENDING, chain,
            state=state, error=None, retry_base=run.attempt, wake_at=None, published_at=run.now,
        )
    return Wakeup(run.id, run.workflow, run.step, run.seq)


def expire(db: Database, run_id: str, wait_id: str) -> Wakeup | None:
    """Expire a wait whose deadline passed (the reaper); None if it was decided meanwhile."""
    with db.begin() as conn:
        wait = conn.execute(
            select(waits_t.c.expires_at, db_now().label("now")).where(waits_t.c.id == wait_id)
        ).first()
        if wait is None or wait.expires_at is None or wait.expires_at > wait.now:
            return None
        return decide_locked(conn, run_id, wait_id, "expired", "system", None)
