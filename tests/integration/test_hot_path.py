"""The step's hot path stays lean: count the SQL statements one step issues."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text

from pipeline import (
    Done,
    Next,
    WaitForApproval,
    Workflow,
    approve,
    get_run,
    run_history,
    start_run,
    verify_audit,
)
from pipeline.engine import execute_step
from pipeline.settings import get_settings
from pipeline.store import get_db
from tests.support.inline import InlineDispatcher


@contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(sql.split()[0].upper())

    engines = get_db().engines
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def test_a_step_is_one_claim_and_one_commit(pg_db: str, inline: InlineDispatcher) -> None:
    name = f"lean_{uuid.uuid4().hex[:8]}"
    flow = Workflow(name)

    @flow.step(start=True)
    def first(ctx: Any) -> Any:
        ctx.state["n"] = 1
        return Next("second")

    @flow.step
    def second(ctx: Any) -> Any:
        return Done(ctx.state["n"])

    run_id = start_run(name, {})
    wakeup = inline.queue.popleft()
    with statements() as seen:
        outcome = execute_step(wakeup.run_id, wakeup.seq, wakeup.step, worker="t")
    assert outcome.committed
    # Claim: one autocommit UPDATE..RETURNING that need not wait for its WAL flush.
    # Commit: one autocommit statement, the fenced UPDATE of the run with the INSERTs of the
    # step record and audit events in a data-modifying CTE. No SELECT: the state came back
    # with the claim.
    assert seen == ["UPDATE", "WITH"], seen
    inline.drain()
    assert get_run(run_id).result == 1


def test_a_duplicate_wakeup_costs_one_statement(pg_db: str, inline: InlineDispatcher) -> None:
    name = f"lean_{uuid.uuid4().hex[:8]}"
    flow = Workflow(name)

    @flow.step(start=True)
    def only(ctx: Any) -> Any:
        return Done(None)

    start_run(name, {})
    wakeup = inline.queue.popleft()
    execute_step(wakeup.run_id, wakeup.seq, wakeup.step, worker="t")
    with statements() as seen:
        outcome = execute_step(wakeup.run_id, wakeup.seq, wakeup.step, worker="t")
    assert not outcome.claimed
    assert seen == ["UPDATE"]


def test_start_run_is_one_statement(pg_db: str, inline: InlineDispatcher) -> None:
    name = f"lean_{uuid.uuid4().hex[:8]}"
    flow = Workflow(name)

    @flow.step(start=True)
    def only(ctx: Any) -> Any:
        return Done(None)

    start_run(name, {})  # the first records the workflow and reads the database clock
    with statements() as seen:
        run_id = start_run(name, {"n": 1})
    # The run and its run.started event: one INSERT ... RETURNING in a data-modifying CTE.
    assert seen == ["WITH"], seen
    assert [e.kind for e in run_history(run_id)] == ["run.started"]
    assert verify_audit(run_id).ok


def test_the_started_run_row_holds_every_starting_value(
    pg_db: str, inline: InlineDispatcher
) -> None:
    """The one INSERT binds only what differs per run (the constants are literals in its
    text, the state is the input parameter again, the timestamps one parameter): the row
    still holds every value a new run starts with."""
    name = f"lean_{uuid.uuid4().hex[:8]}"
    flow = Workflow(name)

    @flow.step(start=True)
    def only(ctx: Any) -> Any:
        return Done(None)

    data = {"order": 7, "note": "nul \u0000 and \ue000 stored losslessly", "items": [1, 2]}
    run_id = start_run(name, data, idempotency_key=f"key-{name}", actor="ann")
    with get_db().engine.connect() as conn:
        row = (
            conn.execute(text("SELECT * FROM ravel_runs WHERE id = :id"), {"id": run_id})
            .one()
            ._mapping
        )
    assert (row["status"], row["step"], row["workflow"], row["workflow_version"]) == (
        "pending",
        "only",
        name,
        1,
    )
    counters = ("seq", "attempt", "recorded_attempt", "retry_base", "fencing", "version")
    assert [row[c] for c in (*counters, "message_count", "audit_seq")] == [0] * 7 + [1]
    assert row["idempotency_key"] == f"key-{name}"
    assert row["created_at"] == row["updated_at"] == row["published_at"]
    redispatch = (row["redispatch_at"] - row["published_at"]).total_seconds()
    assert redispatch == get_settings().redispatch_after
    view = get_run(run_id)
    assert view.input == view.state == data
    assert [(e.kind, e.actor) for e in run_history(run_id)] == [("run.started", "ann")]
    assert verify_audit(run_id).ok
    assert start_run(name, {"other": 1}, idempotency_key=f"key-{name}") == run_id


def test_an_approval_locks_reads_and_decides_in_four_statements(
    pg_db: str, inline: InlineDispatcher
) -> None:
    name = f"lean_{uuid.uuid4().hex[:8]}"
    flow = Workflow(name)

    @flow.step(start=True)
    def ask(ctx: Any) -> Any:
        return WaitForApproval("go?", approvers=["ann"], then="done")

    @flow.step
    def done(ctx: Any) -> Any:
        return Done(ctx.wait_result.decision)

    run_id = start_run(name, {})
    inline.drain()
    wait = get_run(run_id).wait
    assert wait is not None
    wait_id = wait.id
    with statements() as seen:
        approve(run_id, "ann", wait_id=wait_id)
    # The run locked with its open wait, the wait decided, the run made pending, its event.
    assert seen == ["SELECT", "UPDATE", "UPDATE", "INSERT"], seen
    inline.drain()
    assert get_run(run_id).result == "approved"
