"""The one way a run's status changes: a guarded compare-and-set checked against the table.

Every status change (a step's commit, a decision, a cancel, a retry, the reaper waking a
sleeper) is one ``UPDATE ... WHERE status IN (<sources of the target>)`` that
also advances the run's audit chain; the chain's events are inserted in the same transaction
only when the UPDATE won. Callers say whether they won; nobody hard-codes a status guard.
(The claim is the one status change without an audit event of its own: ``step.started`` is
written with the step's commit. Its guard is derived from the same table, in ``steps``.)

A step's commit on PostgreSQL is a single statement: the fenced ``UPDATE`` in a
data-modifying CTE whose ``INSERT``s (audit events, step records, messages) select from its
result, so they write only if it won. Run on an autocommit connection that is one round trip
for the whole commit instead of five (``BEGIN``, ``UPDATE``, two ``INSERT``s, ``COMMIT``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    ClauseElement,
    Connection,
    Update,
    bindparam,
    insert,
    update,
)

from models import Run, table_of
from pipeline.status import TRANSITIONS, RunStatus, sources
from pipeline.store import one_statement
from pipeline.store.audit_log import Chain, audit_t
from pipeline.store.one_statement import Inserts

runs_t = table_of(Run)


@dataclass(frozen=True)
class Fence:
    """The claim a step attempt holds: its fencing token, its lease owner and the row's version.

    The owner is unique per claim (see :func:`pipeline.store.steps.claim`): a claim lost in
    a database crash (claims do not wait for the WAL flush) and a later claim of the same
    run get the same fencing token, but never the same owner.
    """

    fencing: int
    version: int
    owner: str


def transition(
    conn: Connection,
    run_id: str,
    target: RunStatus,
    chain: Chain,
    *,
    values: dict[str, Any],
    only_from: RunStatus | None = None,
    fence: Fence | None = None,
    inserts: Inserts = (),
) -> bool:
    """Move a run to ``target`` if the table allows it from its current status; say if it won.

    Args:
        conn: the caller's transaction.
        run_id: the run.
        target: the new status.
        chain: the run's audit chain with this change's events appended; it is written (and
            the run's ``audit_seq``/``audit_head`` advanced) only when the change wins.
        values: other columns to set.
        only_from: the one status the run must have now (among the table's sources of
            ``target``; a decision needs ``waiting``, not any of them).
        fence: for a step's commit: the claim must still hold the run (status running, same
            fencing token, lease owner and row version). Its statement is built once per target.
        inserts: further rows written only when the change wins (a step's records). With a
            fence on PostgreSQL they go in the same statement as the UPDATE and the audit
            events (see the module docstring).
    """
    audit = {"audit_seq": chain.seq, "audit_head": chain.head}
    if fence is not None:
        params = {
            **values,
            **audit,
            "status": target.value,
            "version": fence.version + 1,
            "w_id": run_id,
            "w_fencing": fence.fencing,
            "w_owner": fence.owner,
            "w_version": fence.version,
        }
        if conn.dialect.name == "postgresql":
            everything = [(audit_t, chain.take()), *inserts]
            return _fenced_in_one_statement(conn, target, params, everything)
        won = conn.execute(_fenced(target), params).rowcount == 1
    elif not any(isinstance(v, ClauseElement) for v in values.values()):
        # Plain values: the statement is built once per (target, status, columns).
        params = {**values, **audit, "status": target.value, "w_id": run_id}
        statement = _moving(target, only_from, tuple(params))
        won = conn.execute(statement, params).rowcount == 1
    else:
        allowed = sources(target) if only_from is None else _only(target, only_from)
        stmt = (
            update(runs_t)
            .where(runs_t.c.id == run_id, runs_t.c.status.in_(allowed))
            .values(status=target.value, version=runs_t.c.version + 1, **audit, **values)
        )
        won = conn.execute(stmt).rowcount == 1
    if won:
        chain.flush(conn)
        for table, rows in inserts:
            if rows:
                conn.execute(insert(table), rows)
    return won


def record_events(conn: Connection, run_id: str, chain: Chain) -> None:
    """Append audit events without a status change (a refused decision), in the caller's
    transaction, which must hold the run row locked."""
    conn.execute(
        update(runs_t)
        .where(runs_t.c.id == run_id)
        .values(audit_seq=chain.seq, audit_head=chain.head)
    )
    chain.flush(conn)


def _only(target: RunStatus, only_from: RunStatus) -> tuple[str, ...]:
    if only_from.value not in sources(target):
        raise ValueError(f"the table does not allow {only_from} -> {target}")
    return (only_from.value,)


@lru_cache(maxsize=128)
def _moving(target: RunStatus, only_from: RunStatus | None, columns: tuple[str, ...]) -> Update:
    """An unfenced status change with bound values for ``columns`` (built once per shape)."""
    allowed = sources(target) if only_from is None else _only(target, only_from)
    status = runs_t.c.status
    return (
        update(runs_t)
        .where(
            runs_t.c.id == bindparam("w_id"),
            status == allowed[0] if len(allowed) == 1 else status.in_(allowed),
        )
        .values(version=runs_t.c.version + 1)
    )


@cache
def _fenced(target: RunStatus) -> Update:
    """The commit's UPDATE to ``target``; its SET clause is the columns in the parameters."""
    if RunStatus.RUNNING not in TRANSITIONS[target]:
        raise ValueError(f"a step cannot move its run from running to {target}")
    return update(runs_t).where(
        runs_t.c.id == bindparam("w_id"),
        runs_t.c.fencing == bindparam("w_fencing"),
        runs_t.c.lease_owner == bindparam("w_owner"),
        runs_t.c.version == bindparam("w_version"),
        runs_t.c.status == RunStatus.RUNNING.value,
    )


def _fenced_in_one_statement(
    conn: Connection, target: RunStatus, params: dict[str, Any], inserts: Inserts
) -> bool:
    """The fenced UPDATE and the rows that go with it, as one statement (PostgreSQL)."""
    if RunStatus.RUNNING not in TRANSITIONS[target]:
        raise ValueError(f"a step cannot move its run from running to {target}")
    sets = [name for name in params if not name.startswith("w_")]
    head = (
        f"UPDATE {runs_t.name} SET {', '.join(f'{name} = :{name}' for name in sets)} "
        "WHERE id = :w_id AND fencing = :w_fencing AND lease_owner = :w_owner "
        "AND version = :w_version "
        "AND status = :w_running"
    )
    params["w_running"] = RunStatus.RUNNING.value
    types = {name: runs_t.c[name].type for name in sets}
    return one_statement.execute(conn, head, types, params, inserts) == 1
