"""Forking a run: a new run from the checkpoint before one of its steps.

The checkpoint before step seq N is what the last attempt of that step started from (kept on
its step record: state, how the wait before it ended, the conversation's length), or, for
the step a live run is at now, the run row itself. The fork is a new pending run at seq N of
the same workflow version, with that state (patched), that wait result and a copy of the
conversation up to there. The journal of the steps before N stays with the original: the
fork never runs them, so nothing of theirs is called or paid again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Row, insert, literal, select

from models import Message, Run, StepRecord, Wait, table_of
from pipeline import errors
from pipeline.status import RunStatus
from pipeline.store._db import Database
from pipeline.store.audit_log import Chain
from pipeline.store.decisions import Wakeup, lock_run
from pipeline.store.transition import record_events

runs_t = table_of(Run)
steps_t = table_of(StepRecord)
messages_t = table_of(Message)
waits_t = table_of(Wait)


@dataclass(frozen=True)
class Checkpoint:
    """What a run looked like just before one of its steps ran."""

    step: str
    state: dict[str, Any]
    wait_result: dict[str, Any] | None
    message_count: int


@dataclass(frozen=True)
class Forked:
    """A fork just created: its id, its first wake-up, and whether the original heard of it.

    ``linked``: the original's history got ``run.forked_to``. Not while a step of the
    original is running: that step's commit extends the audit chain from where it was at
    the claim, so nothing may be appended under it (the fork's ``run.forked`` and its
    ``forked_from`` column still link the two).
    """

    run_id: str
    wakeup: Wakeup
    linked: bool


def fork(
    db: Database,
    run_id: str,
    seq: int,
    actor: str,
    patch: Callable[[dict[str, Any]], tuple[dict[str, Any], list[str]]],
    redispatch_after: float,
) -> Forked:
    """Create a pending run from the checkpoint before step ``seq`` of ``run_id``.

    Args:
        db: the run store.
        run_id: the original run (any status).
        seq: the step seq the fork starts at.
        actor: who forks, for both runs' histories.
        patch: given the checkpoint's state, returns the fork's state and the patched keys;
            raises :class:`~pipeline.errors.InvalidInput` to refuse (nothing is written).
        redispatch_after: when the reaper re-publishes the fork's wake-up if unclaimed.

    Raises:
        RunNotFound: no such run.
        InvalidInput: ``seq`` is not a step of the run that has a checkpoint, or the patch
            was refused.
    """
    with db.begin() as conn:
        run = lock_run(conn, run_id)
        point = _checkpoint(conn, run, seq)
        state, patched = patch(point.state)
        fork_id = str(uuid.uuid4())
        now = run.now
        origin = {
            "from_run": run.id,
            "from_seq": seq,
            "workflow": run.workflow,
            "version": run.workflow_version,
            "patched_keys": patched,
            "messages": point.message_count,
        }
        chain = Chain(fork_id, 0, "")
        chain.append("run.forked", actor, now, point.step, origin)
        conn.execute(
            insert(runs_t).values(
                id=fork_id,
                workflow=run.workflow,
                workflow_version=run.workflow_version,
                status=RunStatus.PENDING.value,
                step=point.step,
                seq=seq,
                attempt=0,
                recorded_attempt=0,
                retry_base=0,
                fencing=0,
                version=0,
                input=run.input,
                state=state,
                wait_result=point.wait_result,
                published_at=now,
                redispatch_at=now + timedelta(seconds=redispatch_after),
                audit_seq=chain.seq,
                audit_head=chain.head,
                message_count=point.message_count,
                forked_from=run.id,
                forked_from_seq=seq,
                created_at=now,
                updated_at=now,
            )
        )
        chain.flush(conn)
        if point.message_count:
            _copy_messages(conn, run.id, fork_id, point.message_count)
        linked = run.status != RunStatus.RUNNING.value
        if linked:
            told = Chain(run.id, run.audit_seq, run.audit_head)
            told.append(
                "run.forked_to",
                actor,
                now,
                point.step,
                {"run_id": fork_id, "from_seq": seq, "patched_keys": patched},
            )
            record_events(conn, run.id, told)
    return Forked(
        fork_id, Wakeup(fork_id, run.workflow, point.step, seq, run.workflow_version), linked
    )


def _checkpoint(conn: Connection, run: Row[Any], seq: int) -> Checkpoint:
    """The checkpoint before step ``seq`` of the (locked) run, or InvalidInput saying why not."""
    status = RunStatus(run.status)
    last = run.seq - 1 if status is RunStatus.SUCCEEDED else run.seq
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= last:
        raise errors.InvalidInput(
            f"run {run.id} has no step seq {seq!r} to fork from: its steps are seq 0 to "
            f"{last} (see `ravel runs show {run.id}`)"
        )
    if seq == run.seq and status is not RunStatus.FAILED:
        _refuse_parked(conn, run, seq, status)
        # The step the run is at has not committed: the run row is its checkpoint.
        return Checkpoint(run.step, run.state, run.wait_result, run.message_count)
    # The last attempt of the step is the one that went on (or failed last).
    rows = conn.execute(
        select(
            steps_t.c.step, steps_t.c.state_before, steps_t.c.wait_result, steps_t.c.message_count
        )
        .where(steps_t.c.run_id == run.id, steps_t.c.seq == seq)
        .order_by(steps_t.c.attempt.desc())
    ).all()
    for row in rows:
        if row.state_before is not None:
            return Checkpoint(
                row.step, row.state_before, row.wait_result, int(row.message_count or 0)
            )
    if seq == 0 and rows:
        return Checkpoint(rows[0].step, run.input, None, 0)  # the run's first step: its input
    raise errors.InvalidInput(
        f"step seq {seq} of run {run.id} was recorded before Ravel kept a checkpoint per step "
        "(migration 0003); fork from a step recorded since, or from seq 0"
    )


def _refuse_parked(conn: Connection, run: Row[Any], seq: int, status: RunStatus) -> None:
    """Refuse the step after a wait that was never decided: the fork would skip the wait."""
    undecided = conn.execute(
        select(waits_t.c.kind)
        .where(
            waits_t.c.run_id == run.id,
            waits_t.c.seq == seq,
            (waits_t.c.decided_at.is_(None)) | (waits_t.c.decision == "cancelled"),
        )
        .limit(1)
    ).first()
    if status is RunStatus.WAITING or undecided is not None:
        kind = undecided.kind if undecided is not None else "a wait"
        raise errors.InvalidInput(
            f"run {run.id} is parked on {kind} before step seq {seq} ({run.step}), which has "
            f"not started: fork from seq {seq - 1} (that step runs again and parks the fork "
            "the same way), or decide the wait first"
        )


def _copy_messages(conn: Connection, source: str, target: str, count: int) -> None:
    """Copy the first ``count`` messages of ``source``'s conversation to ``target``."""
    conn.execute(
        insert(messages_t).from_select(
            ["run_id", "idx", "seq", "message", "created_at"],
            select(
                literal(target, messages_t.c.run_id.type),
                messages_t.c.idx,
                messages_t.c.seq,
                messages_t.c.message,
                messages_t.c.created_at,
            ).where(messages_t.c.run_id == source, messages_t.c.idx <= count),
        )
    )


def forks_of(db: Database, run_id: str) -> list[tuple[str, int]]:
    """The forks of a run: (fork id, the step seq it started at), oldest first."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(runs_t.c.id, runs_t.c.forked_from_seq)
            .where(runs_t.c.forked_from == run_id)
            .order_by(runs_t.c.created_at, runs_t.c.id)
        )
        return [(str(r.id), int(r.forked_from_seq or 0)) for r in rows]
