"""Retries: durable backoff (``sleeping`` + ``wake_at``), failure for good, ``retry_run`` (F27)."""

from __future__ import annotations

import threading

import pytest

from pipeline import (
    Done,
    InvalidTransition,
    Next,
    RetryPolicy,
    Workflow,
    get_run,
    retry_run,
    run_history,
    run_steps,
    start_run,
)
from pipeline.reaper import reap
from tests.integration._engine_support import kinds, reap_until, status, unique


def _drive(inline, run_id: str, timeout: float = 5.0) -> None:
    """Run wake-ups, and reaper passes while the run sleeps, until it is final."""
    inline.drain()
    while not get_run(run_id).status.is_final:
        reap_until(lambda: status(run_id) == "pending", timeout=timeout)
        inline.drain()


def test_failing_twice_then_succeeding_follows_the_backoff(any_db, inline):
    policy = RetryPolicy(max_attempts=3, initial_delay=0.2, backoff=2.0)
    attempts: list[int] = []
    name = unique("retry_backoff")
    flow = Workflow(name)

    @flow.step(start=True, retry=policy)
    def flaky(ctx):
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise TimeoutError(f"attempt {ctx.attempt} timed out")
        return Done({"attempt": ctx.attempt})

    rid = start_run(name, {})
    inline.drain()
    run = get_run(rid)
    assert run.status == "sleeping"
    # Not due yet: a reaper pass right away leaves it asleep.
    assert reap().woken == 0
    assert get_run(rid).status == "sleeping"

    _drive(inline, rid)

    run = get_run(rid)
    assert run.status == "succeeded" and run.result == {"attempt": 3}
    assert attempts == [1, 2, 3]
    steps = run_steps(rid)
    assert [(s.attempt, s.status) for s in steps] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]
    assert "TimeoutError: attempt 1 timed out" in steps[0].error
    for n, expected in ((0, 0.2), (1, 0.4)):
        gap = (steps[n + 1].started_at - steps[n].finished_at).total_seconds()
        assert expected <= gap < expected + 2.0, (n, gap)

    history = run_history(rid)
    scheduled = [e.data for e in history if e.kind == "step.retry_scheduled"]
    assert [(d["attempt"], d["delay"]) for d in scheduled] == [(2, 0.2), (3, 0.4)]
    assert [e.kind for e in history].count("step.failed") == 2
    assert [e.kind for e in history][-1] == "run.succeeded"


def test_always_failing_step_fails_the_run_then_retry_run_resumes_it(any_db, inline):
    policy = RetryPolicy(max_attempts=2, initial_delay=0.05)
    fixed = {"yes": False}
    fetch_calls: list[int] = []
    reserve_calls: list[int] = []
    submit_calls: list[int] = []
    seen_attempts: list[int] = []
    name = unique("retry_fix")
    flow = Workflow(name)

    @flow.step(start=True)
    def fetch(ctx):
        ctx.state["order"] = ctx.effect("fetch", lambda: fetch_calls.append(1) or {"id": 7})
        return Next("submit")

    @flow.step(retry=policy)
    def submit(ctx):
        seen_attempts.append(ctx.attempt)
        ctx.effect("reserve", lambda: reserve_calls.append(1) or "reserved")
        if not fixed["yes"]:
            raise RuntimeError("vendor rejects the order")
        ctx.effect("submit", lambda: submit_calls.append(1) or "po-1")
        return Done({"order": ctx.state["order"], "note": ctx.state.get("note")})

    rid = start_run(name, {})
    _drive(inline, rid)

    run = get_run(rid)
    assert run.status == "failed"
    assert "RuntimeError: vendor rejects the order" in run.error
    assert seen_attempts == [1, 2]
    events = kinds(rid)
    assert events.count("step.failed") == 2
    assert events.count("step.retry_scheduled") == 1
    assert events[-1] == "run.failed"
    assert [(s.step, s.attempt, s.status) for s in run_steps(rid)] == [
        ("fetch", 1, "succeeded"),
        ("submit", 1, "failed"),
        ("submit", 2, "failed"),
    ]

    fixed["yes"] = True
    view = retry_run(rid, "ops", state_patch={"note": "vendor fixed"})
    assert view.status == "pending" and view.error is None
    assert view.state["note"] == "vendor fixed" and view.state["order"] == {"id": 7}
    _drive(inline, rid)

    run = get_run(rid)
    assert run.status == "succeeded"
    assert run.result == {"order": {"id": 7}, "note": "vendor fixed"}
    assert seen_attempts == [1, 2, 1]  # the policy counts again from the operator's retry
    # Journaled effects of the earlier step and of the failing step were not repeated.
    assert (len(fetch_calls), len(reserve_calls), len(submit_calls)) == (1, 1, 1)
    retried = [e for e in run_history(rid) if e.kind == "run.retried"]
    assert len(retried) == 1 and retried[0].actor == "ops"
    assert retried[0].data["patched_keys"] == ["note"]
    assert "vendor rejects" in retried[0].data["previous_error"]
    assert [(s.step, s.attempt, s.status) for s in run_steps(rid)][-1] == ("submit", 3, "succeeded")


def test_retry_run_on_a_run_that_is_not_failed_is_refused(any_db, inline):
    name = unique("retry_refused")
    flow = Workflow(name)

    @flow.step(start=True)
    def only(ctx):
        return Done()

    rid = start_run(name, {})
    with pytest.raises(InvalidTransition):
        retry_run(rid, "ops")  # pending
    inline.drain()
    before = kinds(rid)
    with pytest.raises(InvalidTransition, match="only failed runs"):
        retry_run(rid, "ops", state_patch={"x": 1})  # succeeded
    assert kinds(rid) == before
    assert "x" not in get_run(rid).state


def test_retry_scheduled_run_is_sleeping_with_no_pending_wakeup(any_db, inline):
    name = unique("retry_sleep")
    flow = Workflow(name)

    @flow.step(start=True, retry=RetryPolicy(max_attempts=2, initial_delay=60))
    def slow(ctx):
        raise RuntimeError("later")

    rid = start_run(name, {})
    inline.drain()
    assert get_run(rid).status == "sleeping"
    assert not inline.queue  # the backoff is a DB due time, not a queued message
    report = reap()
    assert (report.woken, report.republished) == (0, 0)
    assert get_run(rid).status == "sleeping"


def test_exception_message_secrets_are_redacted(any_db, inline):
    name = unique("retry_redact")
    flow = Workflow(name)

    @flow.step(start=True, retry=RetryPolicy(max_attempts=1))
    def leak(ctx):
        raise RuntimeError("auth failed for sk-live1234567890abcdef\nFAKE LOG LINE")

    rid = start_run(name, {})
    inline.drain()
    run = get_run(rid)
    assert run.status == "failed"
    assert "sk-live1234567890abcdef" not in run.error
    assert "\n" not in run.error
    assert "[redacted]" in run.error
    for event in run_history(rid):
        assert "sk-live1234567890abcdef" not in repr(event.data)
    assert all("sk-live" not in (s.error or "") for s in run_steps(rid))


def test_two_concurrent_retries_resume_the_run_once(pg_db, inline):
    fixed = {"yes": False}
    name = unique("retry_race")
    flow = Workflow(name)

    @flow.step(start=True, retry=RetryPolicy(max_attempts=1))
    def only(ctx):
        if not fixed["yes"]:
            raise RuntimeError("broken")
        return Done()

    rid = start_run(name, {})
    inline.drain()
    assert get_run(rid).status == "failed"
    fixed["yes"] = True
    barrier = threading.Barrier(4)
    ok: list = []
    refused: list = []

    def retry() -> None:
        barrier.wait()
        try:
            ok.append(retry_run(rid, "ops"))
        except InvalidTransition as exc:
            refused.append(exc)

    threads = [threading.Thread(target=retry) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    assert (len(ok), len(refused)) == (1, 3)
    assert kinds(rid).count("run.retried") == 1
    assert [w.run_id for w in inline.queue] == [rid]
    inline.drain()
    assert get_run(rid).status == "succeeded"
