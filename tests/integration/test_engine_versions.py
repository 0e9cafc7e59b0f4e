"""Workflow versions side by side: a worker claims only the versions it serves, so a rolling
deploy never fails a run (the worker-process version of this is in e2e)."""

from __future__ import annotations

from pipeline import Done, Next, Workflow, get_run, run_steps, start_run
from pipeline.engine import execute_step
from pipeline.store import get_db, runs
from pipeline.workflow import _registry, served_versions
from tests.integration._engine_support import reap_until, unique


def _define(name: str, version: int) -> Workflow:
    flow = Workflow(name, version=version)

    @flow.step(start=True)
    def first(ctx):
        ctx.state.setdefault("ran", []).append(version)
        return Next("second")

    @flow.step
    def second(ctx):
        ctx.state["ran"].append(version)
        return Done({"ran": ctx.state["ran"]})

    return flow


def test_runs_finish_on_the_version_they_started_on(any_db, inline):
    name = unique("versioned")
    _define(name, 1)
    old = start_run(name, {})
    inline.drain(limit=1)  # the old run is half way when the new version is deployed
    _define(name, 2)
    new = start_run(name, {})
    inline.drain()

    assert served_versions(name) == (1, 2)
    assert get_run(old).result == {"ran": [1, 1]} and get_run(old).workflow_version == 1
    assert get_run(new).result == {"ran": [2, 2]} and get_run(new).workflow_version == 2
    # The registry keeps both versions instead of overwriting.
    assert [r.version for r in runs.list_workflows(get_db()) if r.name == name] == [2, 1]


def test_a_version_nobody_here_serves_is_left_pending_not_failed(any_db, inline):
    name = unique("drained")
    _define(name, 1)
    rid = start_run(name, {})
    wake = inline.queue.popleft()
    _define(name, 2)
    v1 = _registry[name].pop(1)  # this worker now serves v2 only

    outcome = execute_step(
        rid, wake.seq, wake.step, worker="v2-only", workflow=name, version=wake.version
    )
    assert not outcome.claimed
    # A wake-up that does not say its version is refused by the claim itself.
    assert not execute_step(rid, wake.seq, wake.step, worker="v2-only").claimed
    assert get_run(rid).status == "pending" and run_steps(rid) == []

    _registry[name][1] = v1  # a worker serving v1 comes back
    reap_until(lambda: bool(inline.queue), timeout=15)
    inline.drain()
    assert get_run(rid).status == "succeeded" and get_run(rid).result == {"ran": [1, 1]}


def test_a_bounced_wake_up_is_re_published_at_the_next_pass_when_its_version_is_served(
    any_db, inline
):
    name = unique("bounce")
    _define(name, 1)
    rid = start_run(name, {})  # v1 registered by this process: seen recently
    wake = inline.queue.popleft()
    _define(name, 2)
    v1 = _registry[name].pop(1)
    assert not execute_step(rid, wake.seq, wake.step, worker="v2", workflow=name, version=1).claimed
    _registry[name][1] = v1
    # Due at once, not after the re-publish backoff (RAVEL_REDISPATCH_AFTER, 5 s here).
    reap_until(lambda: bool(inline.queue), timeout=2)
    assert inline.queue[0].version == 1
