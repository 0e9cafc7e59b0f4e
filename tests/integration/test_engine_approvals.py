"""Approvals: one decision wins, repeats are idempotent, refusals are audited (F22, F23, B8,
B10, B13)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from pipeline import (
    Done,
    InvalidTransition,
    NotAuthorized,
    NotWaiting,
    WaitAlreadyDecided,
    WaitExpired,
    WaitForApproval,
    Workflow,
    approve,
    get_run,
    reject,
    run_history,
    start_run,
)
from pipeline.errors import WaitNotFound
from pipeline.reaper import reap
from pipeline.store import get_db
from tests.integration._engine_support import kinds, reap_until, status, unique


def _approval_flow(timeout: timedelta | None = None, seen: list | None = None) -> str:
    name = unique("approval")
    flow = Workflow(name)

    @flow.step(start=True)
    def ask(ctx):
        return WaitForApproval(
            prompt=f"Pay {ctx.state.get('amount', 0)}?",
            approvers=["alice", "bob"],
            timeout=timeout,
            then="after",
        )

    @flow.step
    def after(ctx):
        wr = ctx.wait_result
        if seen is not None:
            seen.append(wr)
        return Done({"decision": wr.decision, "actor": wr.actor, "data": wr.data})

    return name


def _parked(inline, name: str, **state) -> str:
    rid = start_run(name, state)
    inline.drain()
    assert get_run(rid).status == "waiting"
    return rid


def test_approve_resumes_the_run_with_the_decision(any_db, inline):
    seen: list = []
    rid = _parked(inline, _approval_flow(seen=seen), amount=120)
    wait = get_run(rid).wait
    assert wait.kind == "approval" and wait.approvers == ["alice", "bob"]
    assert wait.prompt == "Pay 120?"

    result = approve(rid, "alice", {"note": "fine"})
    assert result.decision == "approved" and result.wait_id == wait.id
    assert get_run(rid).status == "pending"
    inline.drain()

    run = get_run(rid)
    assert run.status == "succeeded"
    assert run.result == {"decision": "approved", "actor": "alice", "data": {"note": "fine"}}
    assert seen[0].kind == "approval" and seen[0].wait_id == wait.id
    assert kinds(rid).count("wait.approved") == 1


def test_reject_passes_the_reason(any_db, inline):
    rid = _parked(inline, _approval_flow())
    reject(rid, "bob", "too expensive")
    inline.drain()
    assert get_run(rid).result == {"decision": "rejected", "actor": "bob", "data": "too expensive"}


def test_approve_twice_is_idempotent_then_reject_is_refused(any_db, inline):
    rid = _parked(inline, _approval_flow())
    first = approve(rid, "alice")
    again = approve(rid, "alice")
    assert again.decision == "approved" and again.wait_id == first.wait_id
    with pytest.raises(WaitAlreadyDecided, match="already approved"):
        reject(rid, "bob", "no")
    inline.drain()
    # Still refused (and still idempotent) after the run moved on.
    approve(rid, "bob")
    with pytest.raises(WaitAlreadyDecided):
        reject(rid, "alice")
    assert kinds(rid).count("wait.approved") == 1
    assert "wait.rejected" not in kinds(rid)
    assert get_run(rid).result["decision"] == "approved"


def test_concurrent_approves_record_exactly_one_decision(pg_db, inline):
    name = _approval_flow()
    for _ in range(4):
        rid = _parked(inline, name)
        barrier = threading.Barrier(4)
        results: list = []
        errors: list = []

        def decide(actor: str, rid=rid, barrier=barrier, results=results, errors=errors):
            barrier.wait()
            try:
                results.append(approve(rid, actor))
            except Exception as exc:  # any error fails the assertion below
                errors.append(exc)

        threads = [
            threading.Thread(target=decide, args=(a,)) for a in ("alice", "bob", "alice", "bob")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)

        assert errors == [] and len(results) == 4
        assert kinds(rid).count("wait.approved") == 1
        assert len({r.wait_id for r in results}) == 1
        # One decision resumed the run once: exactly one wake-up was published.
        assert [w.run_id for w in inline.queue] == [rid]
        inline.drain()
        assert get_run(rid).status == "succeeded"


def test_non_approver_is_refused_audited_and_the_run_stays_waiting(any_db, inline):
    rid = _parked(inline, _approval_flow())
    with pytest.raises(NotAuthorized, match="alice, bob"):
        approve(rid, "mallory")
    with pytest.raises(NotAuthorized):
        reject(rid, "eve", "no")
    run = get_run(rid)
    assert run.status == "waiting" and run.wait is not None
    refused = [e for e in run_history(rid) if e.kind == "wait.refused"]
    assert [(e.actor, e.data["decision"]) for e in refused] == [
        ("mallory", "approved"),
        ("eve", "rejected"),
    ]
    assert not inline.queue
    approve(rid, "bob")  # a real approver still decides
    inline.drain()
    assert get_run(rid).result["actor"] == "bob"


def test_approving_a_run_that_is_not_waiting_raises_not_waiting(any_db, inline):
    name = unique("no_wait")
    flow = Workflow(name)

    @flow.step(start=True)
    def only(ctx):
        return Done()

    rid = start_run(name, {})
    with pytest.raises(NotWaiting):  # pending
        approve(rid, "alice")
    inline.drain()
    before = kinds(rid)
    with pytest.raises(InvalidTransition, match="not waiting"):  # succeeded
        reject(rid, "alice")
    assert kinds(rid) == before


def test_wait_id_pinning_a_stale_or_foreign_wait_is_refused(any_db, inline):
    name = unique("two_approvals")
    flow = Workflow(name)

    @flow.step(start=True)
    def first(ctx):
        return WaitForApproval(prompt="one", approvers=["alice"], then="second")

    @flow.step
    def second(ctx):
        return WaitForApproval(prompt="two", approvers=["alice"], then="done")

    @flow.step
    def done(ctx):
        return Done(ctx.wait_result.decision)

    rid = _parked(inline, name)
    other = _parked(inline, name)
    stale = get_run(rid).wait.id
    approve(rid, "alice", wait_id=stale)
    inline.drain()
    open_wait = get_run(rid).wait
    assert open_wait.id != stale and open_wait.prompt == "two"

    foreign = get_run(other).wait.id
    with pytest.raises(WaitNotFound):
        approve(rid, "alice", wait_id=foreign)
    with pytest.raises(WaitNotFound):
        approve(rid, "alice", wait_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(WaitAlreadyDecided):
        reject(rid, "alice", wait_id=stale)  # the screen showed the first, decided wait

    # The open wait (and the other run's) is untouched.
    run = get_run(rid)
    assert run.status == "waiting" and run.wait.id == open_wait.id
    assert get_run(other).status == "waiting"
    reject(rid, "alice", wait_id=open_wait.id)
    inline.drain()
    assert get_run(rid).result == "rejected"


def test_expired_approval_resumes_with_expired_and_refuses_late_approval(any_db, inline):
    seen: list = []
    rid = _parked(inline, _approval_flow(timedelta(milliseconds=200), seen))
    assert reap().expired == 0  # not due yet
    reap_until(lambda: status(rid) == "pending")
    inline.drain()

    run = get_run(rid)
    assert run.status == "succeeded"
    assert run.result["decision"] == "expired"
    assert seen[0].decision == "expired" and seen[0].kind == "approval"
    with pytest.raises(WaitExpired):
        approve(rid, "alice")
    events = kinds(rid)
    assert events.count("wait.expired") == 1 and "wait.approved" not in events


def test_approval_after_the_deadline_before_the_reaper_is_refused_and_resumes(any_db, inline):
    rid = _parked(inline, _approval_flow(timedelta(milliseconds=100)))
    time.sleep(0.15)
    with pytest.raises(WaitExpired):
        approve(rid, "alice")
    assert kinds(rid).count("wait.expired") == 1
    assert get_run(rid).status == "pending"
    # The expiry made the run runnable: its wake-up is published at once, not by the reaper.
    assert [w.run_id for w in inline.queue] == [rid]
    inline.drain()
    assert get_run(rid).result["decision"] == "expired"


def test_approval_racing_its_expiry_has_exactly_one_outcome(any_db, inline):
    name = _approval_flow(timedelta(milliseconds=200))
    outcomes = []
    for trial in range(6):
        rid = _parked(inline, name)
        deadline = get_run(rid).wait.expires_at
        offset = (trial - 3) * 0.01  # from 30 ms before to 20 ms after the deadline
        wait_s = (deadline - get_db().now()).total_seconds() + offset
        time.sleep(max(0.0, wait_s))
        barrier = threading.Barrier(3)
        errors: list = []

        def approver(rid=rid, barrier=barrier, errors=errors):
            barrier.wait()
            try:
                approve(rid, "alice")
            except WaitExpired:
                pass
            except Exception as exc:
                errors.append(exc)

        def reaper(barrier=barrier, errors=errors):
            barrier.wait()
            try:
                for _ in range(10):
                    reap()
                    time.sleep(0.005)
            except Exception as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=approver),
            threading.Thread(target=reaper),
            threading.Thread(target=approver),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert errors == []
        reap_until(lambda rid=rid: status(rid) != "waiting")
        events = kinds(rid)
        decided = [k for k in events if k in ("wait.approved", "wait.expired")]
        assert len(decided) == 1, events
        inline.drain()
        run = get_run(rid)
        assert run.status == "succeeded"
        assert run.result["decision"] == decided[0].split(".")[1]
        outcomes.append(decided[0])
    assert len(outcomes) == 6, outcomes
