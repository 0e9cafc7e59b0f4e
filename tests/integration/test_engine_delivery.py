"""Wake-up delivery: duplicates, stale and unknown wake-ups, concurrent claims (F19, B29)."""

from __future__ import annotations

import threading
import uuid

from pipeline import Done, Next, RunStatus, Workflow, get_run, run_history, run_steps, start_run
from pipeline.engine import execute_step
from tests.integration._engine_support import unique


def _two_steps(calls: list[str]) -> str:
    name = unique("deliver")
    flow = Workflow(name)

    @flow.step(start=True)
    def first(ctx):
        calls.append("first")
        ctx.state["first"] = True
        return Next("second")

    @flow.step
    def second(ctx):
        calls.append("second")
        return Done({"ok": True})

    return name


def _snapshot(run_id: str) -> tuple:
    run = get_run(run_id)
    return (
        run.status,
        run.step,
        run.seq,
        run.attempt,
        run.state,
        len(run_history(run_id)),
        [(s.seq, s.attempt, s.status) for s in run_steps(run_id)],
    )


def test_same_wakeup_twice_is_a_noop(any_db, inline):
    calls: list[str] = []
    rid = start_run(_two_steps(calls), {})
    wake = inline.queue.popleft()

    first = execute_step(wake.run_id, wake.seq, wake.step, worker="w1")
    assert first.claimed and first.committed
    assert first.status is RunStatus.PENDING
    before = _snapshot(rid)

    again = execute_step(wake.run_id, wake.seq, wake.step, worker="w2")

    assert again.claimed is False and again.committed is False
    assert _snapshot(rid) == before
    assert calls == ["first"]
    # Only the first execution published the next wake-up.
    assert [w.step for w in inline.queue] == ["second"]


def test_duplicate_of_the_last_step_after_success_is_a_noop(any_db, inline):
    calls: list[str] = []
    rid = start_run(_two_steps(calls), {})
    inline.drain()
    assert get_run(rid).status == "succeeded"
    before = _snapshot(rid)

    for seq, step in ((0, "first"), (1, "second")):
        assert execute_step(rid, seq, step, worker="late").claimed is False

    assert _snapshot(rid) == before
    assert calls == ["first", "second"]


def test_stale_seq_and_wrong_step_are_noops(any_db, inline):
    calls: list[str] = []
    rid = start_run(_two_steps(calls), {})
    inline.drain(limit=1)  # run "first": the run now expects seq 1, step "second"
    before = _snapshot(rid)

    assert execute_step(rid, 0, "first", worker="w").claimed is False  # stale seq
    assert execute_step(rid, 1, "first", worker="w").claimed is False  # wrong step
    assert execute_step(rid, 7, "second", worker="w").claimed is False  # future seq

    assert _snapshot(rid) == before
    assert calls == ["first"]
    inline.drain()
    assert get_run(rid).status == "succeeded"


def test_wakeup_for_unknown_run_is_a_noop(any_db, inline):
    calls: list[str] = []
    other = start_run(_two_steps(calls), {})
    inline.queue.clear()
    before = _snapshot(other)

    for run_id in (str(uuid.uuid4()), "nope", "x'; DROP TABLE ravel_runs; --", "x" * 5000):
        assert execute_step(run_id, 0, "first", worker="w").claimed is False

    assert calls == []
    assert _snapshot(other) == before


def test_two_concurrent_claims_only_one_wins(pg_db, inline):
    calls: list[str] = []
    name = _two_steps(calls)
    trials = 5
    for _ in range(trials):
        rid = start_run(name, {})
        wake = inline.queue.popleft()
        barrier = threading.Barrier(2)
        outcomes = []

        def worker(tag: str, wake=wake, barrier=barrier, outcomes=outcomes) -> None:
            barrier.wait()
            outcomes.append(execute_step(wake.run_id, wake.seq, wake.step, worker=tag))

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)

        assert sorted(o.claimed for o in outcomes) == [False, True]
        assert [(s.seq, s.attempt) for s in run_steps(rid)] == [(0, 1)]
        assert [w.run_id for w in inline.queue] == [rid]
        inline.drain()
        assert get_run(rid).status == "succeeded"
    assert calls.count("first") == trials
