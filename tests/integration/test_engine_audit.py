"""The audit log: every transition recorded, hash-chained per run, tampering detected (I4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

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
from pipeline.store import get_db
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


def test_rehashed_edit_is_detected_downstream(any_db, inline):
    """Editing a row's hash to match its new content breaks the next row's prev_hash."""
    rid = _finished_run(inline)
    row = run_history(rid)[1]
    data = {"attempt": 5}
    with get_db().engine.connect() as conn:
        prev = conn.execute(
            text("SELECT prev_hash FROM ravel_audit WHERE run_id = :r AND idx = 2"), {"r": rid}
        ).scalar_one()
    forged = event_hash(prev, rid, 2, row.kind, row.actor, row.at, row.step, data)
    _sql(
        f"UPDATE ravel_audit SET data = {_json(':d')}, hash = :h WHERE run_id = :r AND idx = 2",
        d='{"attempt": 5}',
        h=forged,
        r=rid,
    )
    result = verify_audit(rid)
    assert not result.ok and result.first_bad_idx == 3


def test_rehashed_last_event_is_detected_by_the_recorded_head(any_db, inline):
    rid = _finished_run(inline)
    last = run_history(rid)[-1]
    with get_db().engine.connect() as conn:
        prev = conn.execute(
            text("SELECT prev_hash FROM ravel_audit WHERE run_id = :r AND idx = :i"),
            {"r": rid, "i": last.idx},
        ).scalar_one()
    forged = event_hash(prev, rid, last.idx, last.kind, "mallory", last.at, last.step, last.data)
    _sql(
        "UPDATE ravel_audit SET actor = 'mallory', hash = :h WHERE run_id = :r AND idx = :i",
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
