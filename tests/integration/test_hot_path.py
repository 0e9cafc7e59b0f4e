"""The step's hot path stays lean: count the SQL statements one step issues."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from pipeline import Done, Next, Workflow, get_run, start_run
from pipeline.engine import execute_step
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
    # with the claim. (SQLite: UPDATE, then the INSERTs, in one transaction.)
    expected = (
        ["UPDATE", "UPDATE", "INSERT", "INSERT"] if get_db().is_sqlite else ["UPDATE", "WITH"]
    )
    assert seen == expected, seen
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
