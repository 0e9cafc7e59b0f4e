"""External events (kept when early, F24) and durable sleep."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline import (
    Done,
    InvalidTransition,
    NotWaiting,
    Sleep,
    WaitForEvent,
    Workflow,
    approve,
    get_run,
    run_history,
    run_steps,
    send_event,
    start_run,
)
from pipeline.reaper import reap
from pipeline.store import get_db
from tests.integration._engine_support import kinds, reap_until, status, unique


def _event_flow(seen: list, timeout: timedelta | None = None) -> str:
    name = unique("event")
    flow = Workflow(name)

    @flow.step(start=True)
    def park(ctx):
        return WaitForEvent("paid", timeout=timeout, then="after")

    @flow.step
    def after(ctx):
        seen.append(ctx.wait_result)
        return Done({"decision": ctx.wait_result.decision, "data": ctx.wait_result.data})

    return name


def test_event_sent_before_the_run_parks_is_kept_and_delivered(any_db, inline):
    seen: list = []
    rid = start_run(_event_flow(seen), {})
    assert get_run(rid).status == "pending"

    assert send_event(rid, "paid", {"amount": 5}) is False  # kept: nothing to wake yet
    assert get_run(rid).status == "pending"
    inline.drain()

    run = get_run(rid)
    assert run.status == "succeeded"
    assert run.result == {"decision": "received", "data": {"amount": 5}}
    assert seen[0].kind == "event" and seen[0].actor == "api"
    events = kinds(rid)
    assert events.index("run.waiting") < events.index("event.received")
    assert events.count("event.received") == 1


def test_event_sent_while_parked_wakes_the_run(any_db, inline):
    seen: list = []
    rid = start_run(_event_flow(seen), {})
    inline.drain()
    run = get_run(rid)
    assert run.status == "waiting" and run.wait.kind == "event" and run.wait.name == "paid"

    assert send_event(rid, "paid", [1, 2], actor="billing") is True
    assert get_run(rid).status == "pending"
    inline.drain()
    assert get_run(rid).result == {"decision": "received", "data": [1, 2]}
    received = [e for e in run_history(rid) if e.kind == "event.received"]
    assert len(received) == 1 and received[0].actor == "billing"


def test_event_with_another_name_does_not_wake_the_run(any_db, inline):
    seen: list = []
    rid = start_run(_event_flow(seen), {})
    inline.drain()

    assert send_event(rid, "refunded", {"x": 1}) is False
    assert get_run(rid).status == "waiting"
    assert not inline.queue and seen == []
    assert "event.received" not in kinds(rid)

    send_event(rid, "paid", "now")
    inline.drain()
    assert get_run(rid).result == {"decision": "received", "data": "now"}


def test_an_event_is_delivered_once(any_db, inline):
    name = unique("event_twice")
    flow = Workflow(name)
    payloads: list = []

    @flow.step(start=True)
    def first(ctx):
        return WaitForEvent("tick", then="second")

    @flow.step
    def second(ctx):
        payloads.append(ctx.wait_result.data)
        return WaitForEvent("tick", then="third")

    @flow.step
    def third(ctx):
        payloads.append(ctx.wait_result.data)
        return Done()

    rid = start_run(name, {})
    send_event(rid, "tick", 1)  # kept until the first wait
    inline.drain()
    assert get_run(rid).status == "waiting"  # the first event does not also satisfy the second
    send_event(rid, "tick", 2)
    inline.drain()
    assert get_run(rid).status == "succeeded"
    assert payloads == [1, 2]


def test_event_to_a_finished_run_is_refused(any_db, inline):
    seen: list = []
    rid = start_run(_event_flow(seen), {})
    inline.drain()
    send_event(rid, "paid", None)
    inline.drain()
    assert get_run(rid).status == "succeeded"
    before = kinds(rid)
    with pytest.raises(InvalidTransition):
        send_event(rid, "paid", None)
    assert kinds(rid) == before


def test_approving_an_event_wait_is_refused(any_db, inline):
    rid = start_run(_event_flow([]), {})
    inline.drain()
    with pytest.raises(NotWaiting, match="send_event"):
        approve(rid, "alice")
    assert get_run(rid).status == "waiting"


def test_event_wait_times_out_with_expired(any_db, inline):
    seen: list = []
    rid = start_run(_event_flow(seen, timedelta(milliseconds=150)), {})
    inline.drain()
    reap_until(lambda: status(rid) == "pending")
    inline.drain()
    assert get_run(rid).result == {"decision": "expired", "data": None}
    assert seen[0].kind == "event"


def test_sleep_parks_the_run_until_due(any_db, inline):
    name = unique("sleep")
    flow = Workflow(name)

    @flow.step(start=True)
    def nap(ctx):
        return Sleep(timedelta(seconds=1.5), then="wake")

    @flow.step
    def wake(ctx):
        return Done()

    rid = start_run(name, {})
    inline.drain()
    run = get_run(rid)
    assert run.status == "sleeping" and run.step == "wake"
    assert not inline.queue  # a sleeping run holds no message

    report = reap()  # not due yet
    assert (report.woken, report.republished) == (0, 0)
    assert get_run(rid).status == "sleeping"

    reports = reap_until(lambda: status(rid) == "pending", timeout=10)
    assert sum(r.woken for r in reports) == 1
    woke_at = get_db().now()
    inline.drain()

    assert get_run(rid).status == "succeeded"
    nap_rec, wake_rec = run_steps(rid)
    assert (nap_rec.step, wake_rec.step) == ("nap", "wake")
    slept = (wake_rec.started_at - nap_rec.finished_at).total_seconds()
    assert 1.5 <= slept < 10.0
    assert (woke_at - nap_rec.finished_at).total_seconds() >= 1.5
    events = kinds(rid)
    assert "run.sleeping" in events and "run.woken" in events


def _two_waits_flow(seen: list, timeout: timedelta) -> str:
    """Parks on "paid" with a deadline, then parks on "paid" again without one."""
    name = unique("event_twice")
    flow = Workflow(name)

    @flow.step(start=True)
    def first(ctx):
        return WaitForEvent("paid", timeout=timeout, then="second")

    @flow.step
    def second(ctx):
        seen.append(ctx.wait_result)
        return WaitForEvent("paid", timeout=None, then="after")

    @flow.step
    def after(ctx):
        seen.append(ctx.wait_result)
        return Done(ctx.wait_result.data)

    return name


@pytest.mark.parametrize("reaper_first", [False, True], ids=["event-first", "reaper-first"])
def test_an_event_after_the_deadline_is_kept_for_the_next_wait(any_db, inline, reaper_first):
    seen: list = []
    rid = start_run(_two_waits_flow(seen, timedelta(milliseconds=100)), {})
    inline.drain()
    assert status(rid) == "waiting"
    import time

    time.sleep(0.15)  # past the deadline
    if reaper_first:
        reap()

    assert send_event(rid, "paid", {"amount": 5}) is False  # decided nothing: kept
    inline.drain()

    # One outcome whether or not the reaper ran first: the wait expired, the event was kept
    # and the next wait of its name received it.
    assert [r.decision for r in seen] == ["expired", "received"]
    assert get_run(rid).status == "succeeded" and get_run(rid).result == {"amount": 5}
    assert kinds(rid).count("wait.expired") == 1 and kinds(rid).count("event.received") == 1
