"""Operator and approver actions: decide a wait, send an event, cancel, retry.

Each is one short transaction that first locks the run row, so it serialises with the step
commit and with each other; every status change goes through
:func:`pipeline.store.transition.transition`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, insert, or_, select, update
from sqlalchemy.sql.dml import Update

from models import InboundEvent, Run, Wait, table_of
from pipeline import errors
from pipeline.principals import authorize
from pipeline.settings import get_settings
from pipeline.status import RunStatus
from pipeline.store._db import Database, db_now
from pipeline.store.audit_log import Chain
from pipeline.store.transition import record_events, transition

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
    #: the run's workflow version: a worker that does not serve it leaves the wake-up alone
    version: int


def lock_run(conn: Connection, run_id: str) -> Row[Any]:
    """The run row, locked for this transaction, with the database clock as ``now``."""
    row = conn.execute(
        select(runs_t, db_now().label("now")).where(runs_t.c.id == run_id).with_for_update()
    ).first()
    if row is None:
        raise errors.RunNotFound(f"no run with id {run_id}; list runs with `ravel runs list`")
    return row


def _redispatch_at(now: datetime) -> datetime:
    """When the reaper re-publishes a wake-up published ``now``, if nobody has claimed it."""
    return now + timedelta(seconds=get_settings().redispatch_after)


def _wakeup(run: Row[Any], step: str) -> Wakeup:
    return Wakeup(run.id, run.workflow, step, run.seq, run.workflow_version)


def _decide_wait(*, expiry: bool) -> Update:
    """The UPDATE that decides a wait: only while undecided and, unless this decision *is*
    the expiry, only before its deadline. Built once."""
    guard = [waits_t.c.id == bindparam("w_id"), waits_t.c.decided_at.is_(None)]
    if not expiry:
        guard.append(or_(waits_t.c.expires_at.is_(None), waits_t.c.expires_at > bindparam("w_now")))
    return update(waits_t).where(*guard).returning(waits_t.c.kind, waits_t.c.then_step)


_DECIDE_WAIT = {False: _decide_wait(expiry=False), True: _decide_wait(expiry=True)}


def decide_locked(
    conn: Connection,
    run_id: str,
    wait_id: str,
    decision: str,
    actor: str,
    data: Any,
    extra: dict[str, Any] | None = None,
    principal: str | None = None,
    locked: Row[Any] | None = None,
) -> Wakeup | None:
    """Decide an open wait of a run and make the run runnable; None if the wait was not open.

    The wait's UPDATE is the single point that decides: it matches only while the wait is
    undecided and, unless this decision *is* the expiry, only before its deadline.
    ``locked``: the run row as :func:`lock_run` returned it in this transaction, if the caller
    holds it already (else it is locked here).
    """
    run = locked if locked is not None else lock_run(conn, run_id)
    won = conn.execute(
        _DECIDE_WAIT[decision == "expired"],
        {
            "w_id": wait_id,
            "w_now": run.now,
            "decided_at": run.now,
            "decision": decision,
            "actor": actor,
            "decision_data": data,
        },
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
    event = {"wait_id": wait_id, "data": data, **(extra or {})}
    if principal is not None:
        result["principal"] = event["as"] = principal
    chain = Chain(run.id, run.audit_seq, run.audit_head)
    chain.append(DECISION_EVENT[decision], actor, run.now, won.then_step, event)
    moved = transition(
        conn,
        run.id,
        RunStatus.PENDING,
        chain,
        only_from=RunStatus.WAITING,
        values={
            "step": won.then_step,
            "wait_result": result,
            "published_at": run.now,
            "redispatch_at": _redispatch_at(run.now),
            "updated_at": run.now,
        },
    )
    if not moved:  # an open wait belongs to a waiting run: anything else is a broken row
        raise errors.InvalidTransition(f"run {run.id} is {run.status}, not waiting")
    return _wakeup(run, won.then_step)


@dataclass(frozen=True)
class Decision:
    """The outcome of an approve/reject call."""

    wait_id: str
    decision: str
    actor: str | None
    at: datetime
    wakeup: Wakeup | None
    repeated: bool = False
    principal: str | None = None
    #: raise this after publishing ``wakeup`` and committing (a refusal is on the record; a
    #: decision after the deadline expired the wait, which made the run runnable)
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


def _refuse(
    conn: Connection, run: Row[Any], wait: Row[Any] | _OpenWait, decision: str, actor: str
) -> Decision:
    """Put a refused decision on the audit record; the caller raises after the commit."""
    chain = Chain(run.id, run.audit_seq, run.audit_head)
    chain.append(
        "wait.refused",
        actor,
        run.now,
        run.step,
        {"wait_id": wait.id, "decision": decision, "why": "not an approver"},
    )
    record_events(conn, run.id, chain)
    approvers = ", ".join(wait.approvers or []) or "nobody"
    refusal = errors.NotAuthorized(
        f"{actor!r} may not decide this approval; approvers are: {approvers}"
    )
    return Decision(wait.id, decision, actor, run.now, None, refusal=refusal)


def decide(
    db: Database,
    run_id: str,
    decision: str,
    actor: str,
    data: Any,
    wait_id: str | None,
    groups: frozenset[str] = frozenset(),
) -> Decision:
    """Approve or reject the run's open approval: exactly one decision wins.

    ``wait_id`` pins the wait the caller saw: a stale screen or a replayed request never
    decides a newer wait. Without it the run's open approval is decided.
    """
    with db.begin() as conn:
        run, wait = _lock_with_open_wait(conn, run_id)
        if wait is None or (wait_id is not None and wait.id != wait_id):
            return _no_open_wait(conn, run, decision, actor, groups, wait_id)
        if wait.kind != "approval":
            raise errors.NotWaiting(
                f"run {run_id} waits for the event {wait.name!r}, not an approval; "
                "send it with send_event"
            )
        principal = authorize(list(wait.approvers or []), actor, groups)
        if principal is None:
            return _refuse(conn, run, wait, decision, actor)
        if wait.expires_at is not None and wait.expires_at <= run.now:
            wakeup = decide_locked(conn, run_id, wait.id, "expired", "system", None, locked=run)
            expired = errors.WaitExpired(
                f"the approval expired at {wait.expires_at:%Y-%m-%d %H:%M:%S} UTC; "
                "the run goes on with decision 'expired'"
            )
            return Decision(wait.id, "expired", "system", run.now, wakeup, refusal=expired)
        wakeup = decide_locked(
            conn, run_id, wait.id, decision, actor, data, principal=principal, locked=run
        )
        return Decision(wait.id, decision, actor, run.now, wakeup, principal=principal)


# The run's columns a decision reads (not its input and state), the database clock, and the
# columns of its open wait a decision reads (not its prompt or data, which would be decoded
# for nothing on every approval), if it has one: one statement that also locks the run row
# (not the wait's).
_OPEN_WAIT_COLUMNS = ("id", "kind", "name", "approvers", "expires_at")
_LOCK_WITH_OPEN_WAIT = (
    select(
        *(runs_t.c[name] for name in ("id", "workflow", "workflow_version", "status", "step")),
        *(runs_t.c[name] for name in ("seq", "audit_seq", "audit_head")),
        db_now().label("now"),
        *(waits_t.c[name].label(f"wait_{name}") for name in _OPEN_WAIT_COLUMNS),
    )
    .select_from(
        runs_t.outerjoin(
            waits_t, and_(waits_t.c.run_id == runs_t.c.id, waits_t.c.decided_at.is_(None))
        )
    )
    .where(runs_t.c.id == bindparam("w_id"))
    .with_for_update(of=runs_t)
)


@dataclass(frozen=True, slots=True)
class _OpenWait:
    """What a decision reads of the run's open wait (:data:`_OPEN_WAIT_COLUMNS`)."""

    id: str
    kind: str
    name: str | None
    approvers: list[str] | None
    expires_at: datetime | None


def _lock_with_open_wait(conn: Connection, run_id: str) -> tuple[Any, _OpenWait | None]:
    """The run (locked, with ``now``) and its open wait (None if it has none)."""
    row = conn.execute(_LOCK_WITH_OPEN_WAIT, {"w_id": run_id}).first()
    if row is None:
        raise errors.RunNotFound(f"no run with id {run_id}; list runs with `ravel runs list`")
    if row.wait_id is None:
        return row, None
    return row, _OpenWait(
        row.wait_id, row.wait_kind, row.wait_name, row.wait_approvers, row.wait_expires_at
    )


def _no_open_wait(
    conn: Connection,
    run: Row[Any],
    decision: str,
    actor: str,
    groups: frozenset[str],
    wait_id: str | None,
) -> Decision:
    last = _latest_wait(conn, run.id, wait_id)
    if wait_id is not None and last is None:
        raise errors.WaitNotFound(
            f"run {run.id} has no wait {wait_id}; the screen may be stale, reload it"
        )
    if last is not None and last.kind == "approval" and last.decided_at is not None:
        # Whoever may not decide is refused, also when repeating a decision already made.
        if authorize(list(last.approvers or []), actor, groups) is None:
            return _refuse(conn, run, last, decision, actor)
        if last.decision == "cancelled" or run.status == RunStatus.CANCELLED:
            raise errors.InvalidTransition(
                f"run {run.id} was cancelled; its approval can no longer be decided"
            )
        if wait_id is not None or run.status != RunStatus.WAITING:
            return _settled(last, decision)
    raise errors.NotWaiting(
        f"run {run.id} is {run.status}, not waiting for an approval; nothing to {decision[:-1]}"
    )


@dataclass(frozen=True)
class EventDelivery:
    """What ``send_event`` did: woke the run with it, or kept it for the next wait of its name.

    ``wakeup`` is set whenever the run became runnable, also when the event came after its
    wait's deadline: the wait then expired (as the reaper would have done) and the event is kept.
    """

    delivered: bool
    wakeup: Wakeup | None


def send_event(db: Database, run_id: str, name: str, payload: Any, actor: str) -> EventDelivery:
    """Deliver an event to the run's open event wait, or keep it until the run parks on it.

    An event that arrives after the wait's deadline decides nothing, whether or not the
    reaper has recorded the expiry yet: the wait expires here and the event is kept.
    """
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
        expired = None
        if wait is not None and wait.expires_at is not None and wait.expires_at <= run.now:
            expired = decide_locked(conn, run_id, wait.id, "expired", "system", None)
            wait = None
        conn.execute(
            insert(inbound_t).values(
                run_id=run_id,
                name=name,
                payload=payload,
                actor=actor,
                received_at=run.now,
                consumed_at=run.now if wait else None,
                wait_id=wait.id if wait else None,
            )
        )
        if wait is None:
            return EventDelivery(False, expired)
        return EventDelivery(True, decide_locked(conn, run_id, wait.id, "received", actor, payload))


def cancel(db: Database, run_id: str, actor: str, reason: str) -> bool:
    """Cancel a live run; False if it was already cancelled. Closes its open wait.

    The fencing token is bumped in the same statement: once this returns, an attempt still
    running for the run can neither start a journaled call nor commit.
    """
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
        chain.append(
            "run.cancelled", actor, run.now, run.step, {"reason": reason, "from": run.status}
        )
        moved = transition(
            conn,
            run.id,
            RunStatus.CANCELLED,
            chain,
            values={
                "error": f"cancelled by {actor}: {reason}",
                "fencing": runs_t.c.fencing + 1,
                "lease_owner": None,
                "lease_expires_at": None,
                "wake_at": None,
                "updated_at": run.now,
            },
        )
        if not moved:  # the row is locked: a miss is a bug, not a race
            raise errors.InvalidTransition(f"run {run_id} cannot be cancelled from {status}")
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
        chain.append(
            "run.retried",
            actor,
            run.now,
            run.step,
            {"patched_keys": sorted(state_patch or {}), "previous_error": run.error},
        )
        transition(
            conn,
            run.id,
            RunStatus.PENDING,
            chain,
            only_from=RunStatus.FAILED,
            values={
                "state": state,
                "error": None,
                "retry_base": run.attempt,
                "wake_at": None,
                "published_at": run.now,
                "redispatch_at": _redispatch_at(run.now),
                "updated_at": run.now,
            },
        )
    return _wakeup(run, run.step)


def expire(db: Database, run_id: str, wait_id: str) -> Wakeup | None:
    """Expire a wait whose deadline passed (the reaper); None if it was decided meanwhile."""
    with db.begin() as conn:
        wait = conn.execute(
            select(waits_t.c.expires_at, db_now().label("now")).where(waits_t.c.id == wait_id)
        ).first()
        if wait is None or wait.expires_at is None or wait.expires_at > wait.now:
            return None
        return decide_locked(conn, run_id, wait_id, "expired", "system", None)
