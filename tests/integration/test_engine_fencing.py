"""The fence covers the work, not only the commit: a cancelled run or an attempt that lost its
lease starts no new journaled call (in-process; the worker-process versions are in e2e)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from sqlalchemy import select

from models import Effect, Run, table_of
from pipeline import Done, RetryPolicy, StepContext, Workflow, cancel_run, get_run, start_run
from pipeline.engine import StepOutcome, execute_step
from pipeline.store import get_db
from tests.integration._engine_support import kinds, reap_until, unique

effects_t = table_of(Effect)
runs_t = table_of(Run)


def _journal(run_id: str) -> dict[str, tuple[str, int]]:
    with get_db().engine.connect() as conn:
        rows = conn.execute(select(effects_t).where(effects_t.c.run_id == run_id))
        return {r.name: (r.status, r.calls) for r in rows}


class Remote:
    """A remote system: records every call it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, what: str, attempt: int) -> dict[str, str]:
        self.calls.append((what, attempt))
        return {"done": what}


def _blocking_flow(
    remote: Remote, paused: threading.Event, release: threading.Event, *, block_attempt: int = 1
) -> str:
    """a -> (block on the first attempt) -> b -> Done."""
    name = unique("fenced")
    flow = Workflow(name, retry=RetryPolicy(max_attempts=5, initial_delay=0.01))

    @flow.step(start=True)
    def work(ctx: StepContext) -> Done:
        ctx.effect("a", remote, "a", ctx.attempt)
        if ctx.attempt == block_attempt:
            paused.set()
            assert release.wait(20)
        ctx.effect("b", remote, "b", ctx.attempt)
        return Done({"attempt": ctx.attempt})

    return name


def _in_thread(**kw: Any) -> tuple[threading.Thread, list[StepOutcome]]:
    """``execute_step(**kw)`` in a thread, as a second worker would run it."""
    box: list[StepOutcome] = []
    thread = threading.Thread(target=lambda: box.append(execute_step(**kw)))
    thread.start()
    return thread, box


def test_no_effect_starts_after_cancel_returned(any_db, inline):
    remote, paused, release = Remote(), threading.Event(), threading.Event()
    rid = start_run(_blocking_flow(remote, paused, release), {})
    wake = inline.queue.popleft()
    thread, box = _in_thread(run_id=rid, seq=wake.seq, step=wake.step, worker="w1")
    assert paused.wait(10)

    cancel_run(rid, "ops", "the order was withdrawn")
    release.set()
    thread.join(10)

    assert remote.calls == [("a", 1)], "b was called after cancel_run returned"
    assert box[0].claimed and not box[0].committed
    assert _journal(rid) == {"a": ("done", 1)}  # not even an intent for b
    run = get_run(rid)
    assert run.status == "cancelled" and run.result is None
    assert "step.succeeded" not in kinds(rid) and not inline.queue


def test_a_zombie_that_lost_its_lease_does_not_repeat_an_effect(any_db, inline, monkeypatch):
    monkeypatch.setenv("RAVEL_LEASE_SECONDS", "0.3")
    from pipeline.settings import reload_settings

    reload_settings()
    remote, paused, release = Remote(), threading.Event(), threading.Event()
    rid = start_run(_blocking_flow(remote, paused, release), {})
    wake = inline.queue.popleft()
    # Worker 1 freezes inside the step, after a, its journal loaded; its lease keeper is
    # stopped too (a SIGSTOPped process renews nothing).
    from pipeline import lease

    monkeypatch.setattr(lease.LeaseKeeper, "hold", lambda self, run_id, fencing, owner: None)
    zombie, zombie_box = _in_thread(run_id=rid, seq=wake.seq, step=wake.step, worker="w1")
    assert paused.wait(10)
    time.sleep(0.5)  # the lease expires

    # The reaper re-publishes the run; worker 2 takes it over and finishes it (a is not re-run).
    reap_until(lambda: bool(inline.queue), timeout=10)
    inline.drain()
    assert get_run(rid).status == "succeeded"
    assert remote.calls == [("a", 1), ("b", 2)]

    release.set()  # the zombie resumes with its stale journal (b not done in it)
    zombie.join(10)

    assert remote.calls == [("a", 1), ("b", 2)], "the resumed zombie called b again"
    assert zombie_box[0].claimed and not zombie_box[0].committed
    assert get_run(rid).result == {"attempt": 2}
    assert _journal(rid) == {"a": ("done", 1), "b": ("done", 1)}


def test_a_step_that_swallows_the_fence_signal_still_commits_nothing(any_db, inline):
    remote, paused, release = Remote(), threading.Event(), threading.Event()
    name = unique("swallow")
    flow = Workflow(name)

    @flow.step(start=True)
    def work(ctx: StepContext) -> Done:
        paused.set()
        assert release.wait(20)
        with contextlib.suppress(BaseException):  # what a careless step might do
            ctx.effect("b", remote, "b", ctx.attempt)
        assert ctx.lease_lost
        return Done({"swallowed": True})

    rid = start_run(name, {})
    wake = inline.queue.popleft()
    thread, box = _in_thread(run_id=rid, seq=wake.seq, step=wake.step, worker="w1")
    assert paused.wait(10)
    cancel_run(rid, "ops")
    release.set()
    thread.join(10)

    assert remote.calls == []
    assert box[0].claimed and not box[0].committed
    assert get_run(rid).status == "cancelled"


def test_a_done_entry_found_by_the_fenced_intent_is_returned_not_called(any_db, inline):
    """An attempt whose loaded journal is stale gets the recorded result from the intent write."""
    remote = Remote()
    name = unique("stale_journal")
    flow = Workflow(name)
    seen: list[object] = []

    @flow.step(start=True)
    def work(ctx: StepContext) -> Done:
        ctx.journal()  # loaded now: empty
        # Another attempt records b meanwhile (as a worker that took over would).
        from pipeline.store import journal

        db = get_db()
        with db.engine.connect() as conn:
            fencing, owner = conn.execute(
                select(runs_t.c.fencing, runs_t.c.lease_owner).where(runs_t.c.id == ctx.run_id)
            ).one()
        assert journal.begin_call(db, ctx.run_id, ctx.seq, "b", "effect", "k", fencing, owner)
        journal.record_result(db, ctx.run_id, ctx.seq, "b", {"done": "elsewhere"})
        seen.append(ctx.effect("b", remote, "b", ctx.attempt))
        return Done()

    rid = start_run(name, {})
    inline.drain()
    assert get_run(rid).status == "succeeded"
    assert remote.calls == [] and seen == [{"done": "elsewhere"}]
