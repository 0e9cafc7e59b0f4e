"""The reaper: lost wake-ups (F20, F21), expired leases of dead workers (F1, F5, F18), poison
claims (F6)."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import pytest

from pipeline import (
    Done,
    Next,
    RetryPolicy,
    RunStatus,
    Workflow,
    dispatch,
    get_run,
    run_history,
    run_steps,
    start_run,
)
from pipeline.engine import execute_step
from pipeline.reaper import reap
from pipeline.settings import reload_settings
from pipeline.store import get_db
from pipeline.store import steps as store
from pipeline.store.steps import CommitPlan
from tests.integration._engine_support import kinds, reap_until, unique


@pytest.fixture
def fast_reaper(monkeypatch):
    """Re-publish after 0.3 s instead of 5 s."""
    monkeypatch.setenv("RAVEL_REDISPATCH_AFTER", "0.3")
    reload_settings()
    yield 0.3
    monkeypatch.delenv("RAVEL_REDISPATCH_AFTER")
    reload_settings()


def _flow(calls: list[str], retry: RetryPolicy | None = None) -> str:
    name = unique("reaper")
    flow = Workflow(name)

    @flow.step(start=True, retry=retry)
    def first(ctx):
        calls.append("first")
        return Next("second")

    @flow.step
    def second(ctx):
        calls.append("second")
        return Done()

    return name


def test_lost_start_wakeup_is_republished_after_the_redispatch_delay(any_db, fast_reaper, inline):
    calls: list[str] = []
    dropped: list = []
    dispatch.set_dispatcher(lambda wakeup, queue: dropped.append(wakeup))
    rid = start_run(_flow(calls), {})
    assert len(dropped) == 1  # published into the void
    created = get_run(rid).created_at

    assert reap().republished == 0  # not overdue yet
    dispatch.set_dispatcher(inline)
    reports = reap_until(lambda: bool(inline.queue))

    assert sum(r.republished for r in reports) == 1
    assert (get_db().now() - created).total_seconds() >= fast_reaper
    assert [(w.run_id, w.seq, w.step) for w in inline.queue] == [(rid, 0, "first")]
    assert reap().republished == 0  # published_at moved: no hot loop
    inline.drain()
    assert get_run(rid).status == "succeeded"
    assert calls == ["first", "second"]


def test_lost_wakeup_after_a_commit_is_republished(any_db, fast_reaper, inline):
    calls: list[str] = []
    rid = start_run(_flow(calls), {})
    inline.drain(limit=1)
    assert [w.step for w in inline.queue] == ["second"]
    inline.queue.clear()  # the broker lost the hand-on message

    reap_until(lambda: bool(inline.queue))
    inline.drain()
    assert get_run(rid).status == "succeeded"
    assert calls == ["first", "second"]
    assert [s.step for s in run_steps(rid)] == ["first", "second"]


def test_dead_workers_lease_expires_and_the_run_is_redriven(any_db, fast_reaper, inline):
    calls: list[str] = []
    rid = start_run(_flow(calls), {})
    wake = inline.queue.popleft()
    # A worker claims, then dies without committing: it never renews its 0.4 s lease.
    dead = store.claim(get_db(), rid, wake.seq, wake.step, 0.4, "dead-worker", [(wake.workflow, 1)])
    assert dead is not None and get_run(rid).status == "running"

    # While the lease is live, neither a duplicate message nor the reaper takes the run over.
    assert execute_step(rid, wake.seq, wake.step, worker="dup").claimed is False
    assert reap().republished == 0

    reap_until(lambda: bool(inline.queue))
    run = get_run(rid)
    assert run.status == "running"
    inline.drain()

    assert get_run(rid).status == "succeeded"
    assert calls == ["first", "second"]  # the dead attempt never ran the function here
    records = run_steps(rid)
    assert [(s.seq, s.attempt, s.status) for s in records] == [
        (0, 1, "lost"),
        (0, 2, "succeeded"),
        (1, 1, "succeeded"),
    ]
    assert records[0].worker is None and "died" in records[0].error
    assert records[1].worker == "inline"
    lost = [e for e in run_history(rid) if e.kind == "step.lost"]
    assert len(lost) == 1 and lost[0].data == {"attempt": 1}

    # The dead worker wakes up (SIGCONT) and tries to commit: fenced out, nothing changes.
    before = (kinds(rid), [(s.seq, s.attempt) for s in run_steps(rid)])
    zombie = CommitPlan(
        RunStatus.FAILED,
        "first",
        advance=False,
        step_status="failed",
        outcome="fail",
        events=[("run.failed", {})],
        error="zombie",
    )
    assert store.commit(get_db(), dead, zombie, 5.0) is None
    assert (kinds(rid), [(s.seq, s.attempt) for s in run_steps(rid)]) == before
    assert get_run(rid).status == "succeeded" and get_run(rid).error is None


def test_a_claim_that_keeps_dying_fails_the_run_at_max_attempts(any_db, fast_reaper, inline):
    calls: list[str] = []
    rid = start_run(_flow(calls, RetryPolicy(max_attempts=2, initial_delay=0.01)), {})
    wake = inline.queue.popleft()
    for n in (1, 2):
        claim = store.claim(
            get_db(), rid, wake.seq, wake.step, 0.1, f"oom-{n}", [(wake.workflow, 1)]
        )
        assert claim is not None and claim.attempt == n
        time.sleep(0.12)  # the child is OOM-killed; its lease runs out

    reap_until(lambda: bool(inline.queue))
    inline.drain()

    run = get_run(rid)
    assert run.status == "failed"
    assert "max_attempts=2" in run.error and "attempt 3" in run.error
    assert calls == []  # the poison step is not run a third time
    assert [(s.attempt, s.status) for s in run_steps(rid)] == [
        (1, "lost"),
        (2, "lost"),
        (3, "failed"),
    ]
    events = kinds(rid)
    assert events.count("step.lost") == 2 and events[-1] == "run.failed"


def test_reaper_passes_are_safe_to_repeat(any_db, fast_reaper, inline):
    calls: list[str] = []
    rid = start_run(_flow(calls), {})
    inline.queue.clear()
    reap_until(lambda: bool(inline.queue))
    for _ in range(3):
        reap()
    # Several copies of a wake-up may be queued: only one claims, the rest are no-ops.
    inline.queue.extend(list(inline.queue))
    outcomes = inline.drain()
    assert get_run(rid).status == "succeeded"
    assert calls == ["first", "second"]
    assert sum(o.committed for o in outcomes) == 2


def test_republishing_backs_off_while_a_run_stays_pending(any_db, fast_reaper, inline):
    """A run pending for long is most likely behind a backlog: re-publish at R, 2R, 4R ...
    after it became runnable, not every R, so a slow queue is not flooded."""
    published: list[float] = []
    dispatch.set_dispatcher(lambda wakeup, queue: published.append(time.monotonic()))
    start_run(_flow([]), {})
    start = published[0]
    while time.monotonic() - start < 2.5:  # R = 0.3 s: every R would be 8 re-publishes
        reap()
        time.sleep(0.02)
    ages = [round(t - start, 2) for t in published]
    assert 3 <= len(ages) - 1 <= 4, ages  # at about 0.3, 0.6, 1.2 and 2.4 s, not every 0.3 s
    # Each re-publish waits at least as long as the run had already waited (a loaded
    # machine only makes the reaper later, never earlier).
    for (_, before), (_, after) in itertools.pairwise(itertools.pairwise(ages)):
        assert after - before >= 0.9 * before, ages


def _sleeping_runs(inline, count: int) -> list[str]:
    name = unique("sleepers")
    flow = Workflow(name)

    @flow.step(start=True)
    def nap(ctx):
        from pipeline import Sleep

        return Sleep(timedelta(milliseconds=50), then="done")

    @flow.step
    def done(ctx):
        return Done()

    ids = [start_run(name, {}) for _ in range(count)]
    inline.drain()
    assert {get_run(r).status for r in ids} == {RunStatus.SLEEPING}
    return ids


def test_one_bad_row_is_logged_and_skipped_and_the_pass_goes_on(any_db, inline, caplog):
    from sqlalchemy import insert

    from models import AuditEvent, table_of

    good, bad, other = _sleeping_runs(inline, 3)
    # Corrupt one run: an audit row already sits where its next event must go, so waking it
    # fails on the primary key (as a hand-edited or half-restored row might).
    run = get_run(bad)
    from pipeline.store import runs as store_runs

    next_idx = len(store_runs.history(get_db(), bad)) + 1
    with get_db().begin() as conn:
        conn.execute(
            insert(table_of(AuditEvent)).values(
                run_id=bad,
                idx=next_idx,
                kind="x",
                actor="x",
                at=run.updated_at,
                step=None,
                data={},
                hash="",
            )
        )
    time.sleep(0.1)

    report = reap()

    assert report.woken == 2 and len(report.errors) == 1 and bad in report.errors[0]
    assert get_run(good).status == "pending" and get_run(other).status == "pending"
    assert get_run(bad).status == "sleeping"  # untouched, retried next pass
    assert any("could not wake run" in r.getMessage() for r in caplog.records)
    inline.drain()
    assert get_run(good).status == "succeeded" and get_run(other).status == "succeeded"
    # The pass and its error are on record for operators.
    from pipeline.store import health

    (reaper,) = health.reapers(get_db())
    assert reaper.last_report["errors"] == 1 and bad in (reaper.last_error or "")


def test_the_re_publish_query_returns_only_what_is_due_however_long_the_backlog(
    any_db, fast_reaper, inline
):
    """The backoff lives in an indexed due time: 250 backlogged runs re-published recently
    cannot hide a run whose wake-up is due (it used to wait behind the LIMIT)."""
    from sqlalchemy import update

    from models import Run, table_of

    calls: list[str] = []
    name = _flow(calls)
    backlog = [start_run(name, {}) for _ in range(250)]
    lost = start_run(name, {})
    inline.queue.clear()  # every wake-up is lost
    runs_t = table_of(Run)
    now = get_db().now()
    with get_db().begin() as conn:  # the backlog was re-published a moment ago
        conn.execute(
            update(runs_t)
            .where(runs_t.c.id.in_(backlog))
            .values(published_at=now, redispatch_at=now + timedelta(seconds=60))
        )
    time.sleep(0.4)

    report = reap()

    assert report.republished == 1
    assert [w.run_id for w in inline.queue] == [lost]


def test_an_expired_lease_is_re_driven_at_the_next_pass_whatever_the_redispatch_delay(
    any_db, inline, monkeypatch
):
    """Recovery takes the lease plus a reaper pass, even when RAVEL_REDISPATCH_AFTER (the
    wait before re-publishing a pending run) is longer than the lease."""
    monkeypatch.setenv("RAVEL_REDISPATCH_AFTER", "60")
    reload_settings()
    calls: list[str] = []
    rid = start_run(_flow(calls), {})
    wake = inline.queue.popleft()
    assert (
        store.claim(get_db(), rid, wake.seq, wake.step, 0.3, "dead-worker", [(wake.workflow, 1)])
        is not None
    )
    time.sleep(0.4)  # the lease expired; the run was published 0.4 s ago, not 60

    assert reap().republished == 1
    assert [w.run_id for w in inline.queue] == [rid]
    assert reap().republished == 0  # not again at every pass
