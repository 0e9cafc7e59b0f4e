"""Cancelling runs: parked, sleeping, running (the commit is dropped), finished (F25)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from pipeline import (
    Done,
    InvalidTransition,
    Next,
    RetryPolicy,
    Sleep,
    WaitForApproval,
    Workflow,
    approve,
    cancel_run,
    get_run,
    reject,
    run_history,
    run_steps,
    send_event,
    start_run,
)
from pipeline.engine import execute_step
from pipeline.reaper import reap
from tests.integration._engine_support import kinds, unique


def _approval_flow() -> str:
    name = unique("cancel_wait")
    flow = Workflow(name)

    @flow.step(start=True)
    def ask(ctx):
        return WaitForApproval(prompt="ok?", approvers=["alice"], then="after")

    @flow.step
    def after(ctx):
        return Done()

    return name


def test_cancel_a_waiting_run_then_a_decision_is_refused(any_db, inline):
    rid = start_run(_approval_flow(), {})
    inline.drain()
    assert get_run(rid).status == "waiting"

    view = cancel_run(rid, "ops", "customer withdrew")
    assert view.status == "cancelled" and view.wait is None
    assert "customer withdrew" in view.error
    cancelled = [e for e in run_history(rid) if e.kind == "run.cancelled"]
    assert len(cancelled) == 1 and cancelled[0].actor == "ops"
    assert cancelled[0].data["from"] == "waiting"

    before = kinds(rid)
    with pytest.raises(InvalidTransition, match="cancelled"):
        approve(rid, "alice")
    with pytest.raises(InvalidTransition):
        reject(rid, "alice")
    with pytest.raises(InvalidTransition):
        send_event(rid, "x")
    assert get_run(rid).status == "cancelled"
    assert "wait.approved" not in kinds(rid) and kinds(rid) == before
    assert not inline.queue


def test_cancel_twice_is_not_an_error(any_db, inline):
    rid = start_run(_approval_flow(), {})
    cancel_run(rid, "ops")
    view = cancel_run(rid, "ops", "again")
    assert view.status == "cancelled"
    assert kinds(rid).count("run.cancelled") == 1


def test_cancel_a_pending_run_its_wakeup_does_nothing(any_db, inline):
    calls: list[str] = []
    name = unique("cancel_pending")
    flow = Workflow(name)

    @flow.step(start=True)
    def only(ctx):
        calls.append("ran")
        return Done()

    rid = start_run(name, {})
    cancel_run(rid, "ops")
    outcomes = inline.drain()
    assert [o.claimed for o in outcomes] == [False]
    assert calls == [] and run_steps(rid) == []
    assert get_run(rid).status == "cancelled"


def test_cancel_a_sleeping_run_the_reaper_does_not_wake_it(any_db, inline):
    name = unique("cancel_sleep")
    flow = Workflow(name)

    @flow.step(start=True)
    def nap(ctx):
        return Sleep(timedelta(milliseconds=50), then="after")

    @flow.step
    def after(ctx):
        return Done()

    rid = start_run(name, {})
    inline.drain()
    assert get_run(rid).status == "sleeping"
    cancel_run(rid, "ops")
    time.sleep(0.1)
    assert reap().woken == 0
    assert get_run(rid).status == "cancelled" and not inline.queue


def test_cancel_while_the_step_runs_drops_its_commit(any_db, inline):
    effects: list[str] = []
    name = unique("cancel_running")
    flow = Workflow(name)

    @flow.step(start=True)
    def work(ctx):
        assert get_run(ctx.run_id).status == "running"
        cancel_run(ctx.run_id, "ops", "stop it")
        ctx.state["written"] = True
        effects.append("work")
        return Next("never")

    @flow.step
    def never(ctx):
        effects.append("never")
        return Done()

    rid = start_run(name, {})
    wake = inline.queue.popleft()
    outcome = execute_step(wake.run_id, wake.seq, wake.step, worker="w1")

    assert outcome.claimed is True and outcome.committed is False
    run = get_run(rid)
    assert run.status == "cancelled" and "written" not in run.state and run.seq == 0
    assert run_steps(rid) == []  # the attempt's record was part of the dropped commit
    assert "step.succeeded" not in kinds(rid)
    assert not inline.queue  # nothing published
    assert effects == ["work"]


def test_cancel_from_another_thread_while_the_step_runs(pg_db, inline):
    started, release = threading.Event(), threading.Event()
    name = unique("cancel_thread")
    flow = Workflow(name)

    @flow.step(start=True)
    def slow(ctx):
        started.set()
        assert release.wait(10)
        return Done({"late": True})

    rid = start_run(name, {})
    wake = inline.queue.popleft()
    box: list = []
    worker = threading.Thread(
        target=lambda: box.append(execute_step(rid, wake.seq, wake.step, worker="w1"))
    )
    worker.start()
    assert started.wait(10)
    cancel_run(rid, "ops")
    release.set()
    worker.join(10)

    assert box[0].claimed and not box[0].committed
    run = get_run(rid)
    assert run.status == "cancelled" and run.result is None


def test_cancel_a_finished_run_is_refused(any_db, inline):
    name = unique("cancel_done")
    flow = Workflow(name)

    @flow.step(start=True, retry=RetryPolicy(max_attempts=1))
    def only(ctx):
        if ctx.state.get("fail"):
            raise RuntimeError("no")
        return Done()

    ok = start_run(name, {})
    bad = start_run(name, {"fail": True})
    inline.drain()
    assert get_run(ok).status == "succeeded" and get_run(bad).status == "failed"
    for rid in (ok, bad):
        before = kinds(rid)
        with pytest.raises(InvalidTransition, match="only live runs"):
            cancel_run(rid, "ops")
        assert kinds(rid) == before
    assert get_run(ok).status == "succeeded" and get_run(bad).status == "failed"
