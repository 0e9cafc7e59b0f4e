"""The audit log: every transition recorded, hash-chained per run, tampering detected (I4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import create_engine, pool, text

from pipeline import (
    Done,
    Next,
    NotAuthorized,
    RetryPolicy,
    WaitForApproval,
    Workflow,
    approve,
    get_run,
    run_history,
    start_run,
    verify_audit,
)
from pipeline.audit import event_hash
from pipeline.migrate import downgrade, upgrade
from pipeline.store import get_db, reset_db, runs
from tests.integration._engine_support import kinds, reap_until, status, unique


def _finished_run(inline) -> str:
    """A run with a retry, an approval and a few steps: a varied audit trail."""
    name = unique("audit")
    flow = Workflow(name)

    @flow.step(start=True, retry=RetryPolicy(max_attempts=2, initial_delay=0.05))
    def fetch(ctx):
        if ctx.attempt == 1:
            raise RuntimeError("flaky")
        return WaitForApproval("ok?", approvers=["alice"], timeout=timedelta(hours=1), then="pay")

    @flow.step
    def pay(ctx):
        return Next("report")

    @flow.step
    def report(ctx):
        return Done({"ok": True})

    rid = start_run(name, {"amount": 3})
    inline.drain()
    reap_until(lambda: status(rid) == "pending")
    inline.drain()
    approve(rid, "alice", {"why": "fine"})
    inline.drain()
    assert get_run(rid).status == "succeeded"
    return rid


def _sql(statement: str, **params) -> None:
    with get_db().engine.begin() as conn:
        conn.execute(text(statement), params)


def _json(param: str) -> str:
    return param if get_db().is_sqlite else f"CAST({param} AS jsonb)"


def test_every_transition_is_audited_in_order(any_db, inline):
    rid = _finished_run(inline)
    history = run_history(rid)
    assert [e.kind for e in history] == [
        "run.started",
        "step.started",
        "step.failed",
        "step.retry_scheduled",
        "run.woken",
        "step.started",
        "step.succeeded",
        "run.waiting",
        "wait.approved",
        "step.started",
        "step.succeeded",
        "step.started",
        "step.succeeded",
        "run.succeeded",
    ]
    assert [e.idx for e in history] == list(range(1, len(history) + 1))
    ats = [e.at for e in history]
    assert ats == sorted(ats)  # the database clock, oldest first
    approved = history[8]
    assert approved.actor == "alice" and approved.data["data"] == {"why": "fine"}


def test_untouched_chain_verifies(any_db, inline):
    rid = _finished_run(inline)
    result = verify_audit(rid)
    assert result.ok and result.first_bad_idx is None
    assert result.events == len(run_history(rid))


def test_edited_event_data_is_detected(any_db, inline):
    rid = _finished_run(inline)
    _sql(
        f"UPDATE ravel_audit SET data = {_json(':d')} WHERE run_id = :r AND idx = 2",
        d='{"attempt": 99}',
        r=rid,
    )
    result = verify_audit(rid)
    assert not result.ok
    assert result.first_bad_idx == 2
    assert "edited" in result.problem


def test_edited_actor_is_detected(any_db, inline):
    rid = _finished_run(inline)
    _sql(
        "UPDATE ravel_audit SET actor = 'mallory' WHERE run_id = :r AND kind = 'wait.approved'",
        r=rid,
    )
    result = verify_audit(rid)
    assert not result.ok and result.first_bad_idx == 9


def test_deleted_event_is_detected(any_db, inline):
    rid = _finished_run(inline)
    _sql("DELETE FROM ravel_audit WHERE run_id = :r AND idx = 3", r=rid)
    result = verify_audit(rid)
    assert not result.ok
    assert result.first_bad_idx in (3, 4)
    assert "missing" in result.problem


def test_deleted_last_event_is_detected(any_db, inline):
    rid = _finished_run(inline)
    last = len(run_history(rid))
    _sql("DELETE FROM ravel_audit WHERE run_id = :r AND idx = :i", r=rid, i=last)
    result = verify_audit(rid)
    assert not result.ok
    assert result.first_bad_idx == last


def _digest(param: str) -> str:
    # PostgreSQL stores a digest's 32 bytes; SQLite its hex text.
    return param if get_db().is_sqlite else f"decode({param}, 'hex')"


def _hash_of(run_id: str, idx: int) -> str:
    """An event's stored hash (the one the next event is chained to)."""
    (event,) = [e for e in runs.history(get_db(), run_id) if e.idx == idx]
    return event.hash


def test_rehashed_edit_is_detected_downstream(any_db, inline):
    """Editing a row's hash to match its new content breaks the next row's link."""
    rid = _finished_run(inline)
    row = run_history(rid)[1]
    data = {"attempt": 5}
    forged = event_hash(_hash_of(rid, 1), rid, 2, row.kind, row.actor, row.at, row.step, data)
    _sql(
        f"UPDATE ravel_audit SET data = {_json(':d')}, hash = {_digest(':h')} "
        "WHERE run_id = :r AND idx = 2",
        d='{"attempt": 5}',
        h=forged,
        r=rid,
    )
    result = verify_audit(rid)
    assert not result.ok and result.first_bad_idx == 3
    assert "re-hashed" in result.problem


def test_rehashed_last_event_is_detected_by_the_recorded_head(any_db, inline):
    rid = _finished_run(inline)
    last = run_history(rid)[-1]
    prev = _hash_of(rid, last.idx - 1)
    forged = event_hash(prev, rid, last.idx, last.kind, "mallory", last.at, last.step, last.data)
    _sql(
        f"UPDATE ravel_audit SET actor = 'mallory', hash = {_digest(':h')} "
        "WHERE run_id = :r AND idx = :i",
        h=forged,
        r=rid,
        i=last.idx,
    )
    result = verify_audit(rid)
    assert not result.ok and result.first_bad_idx == last.idx
    assert "head" in result.problem


def test_refusals_and_operator_actions_keep_the_chain_valid(any_db, inline):
    name = unique("audit_ops")
    flow = Workflow(name)

    @flow.step(start=True)
    def ask(ctx):
        return WaitForApproval("ok?", approvers=["alice"], then="done")

    @flow.step
    def done(ctx):
        return Done()

    rid = start_run(name, {})
    inline.drain()
    for actor in ("eve", "mallory"):
        with pytest.raises(NotAuthorized):
            approve(rid, actor)
    approve(rid, "alice")
    inline.drain()
    assert kinds(rid).count("wait.refused") == 2
    assert verify_audit(rid).ok


def test_a_chain_survives_the_migrations_down_and_up(any_db, inline):
    """Revision 0005 dropped ``prev_hash`` (and on PostgreSQL retyped ids and hashes): going
    down restores each event's ``prev_hash`` from the event before it, and a chain written
    at 0004 verifies at head, with the same ids and hashes."""
    rid = _finished_run(inline)
    hashes = [e.hash for e in runs.history(get_db(), rid)]
    reset_db()  # the migration alters the tables: no pooled connection may hold them
    downgrade(any_db, "0004")
    engine = create_engine(any_db, poolclass=pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT prev_hash, hash FROM ravel_audit WHERE run_id = :r ORDER BY idx"),
            {"r": rid},
        ).all()
    assert [r.hash for r in rows] == hashes
    assert [r.prev_hash for r in rows] == ["", *hashes[:-1]]
    upgrade(any_db)
    assert verify_audit(rid).ok
    assert get_run(rid).id == rid
    assert [e.hash for e in runs.history(get_db(), rid)] == hashes
