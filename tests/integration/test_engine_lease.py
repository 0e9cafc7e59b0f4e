"""A long step keeps its lease: duplicates and the reaper cannot take the run over (F7, F18)."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline import Done, Workflow, get_run, run_steps, start_run
from pipeline.engine import execute_step
from pipeline.reaper import reap
from pipeline.settings import reload_settings
from tests.integration._engine_support import kinds, unique


@pytest.fixture
def short_lease(monkeypatch):
    monkeypatch.setenv("RAVEL_LEASE_SECONDS", "0.45")
    monkeypatch.setenv("RAVEL_REDISPATCH_AFTER", "0.1")
    reload_settings()
    yield 0.45
    monkeypatch.delenv("RAVEL_LEASE_SECONDS")
    monkeypatch.delenv("RAVEL_REDISPATCH_AFTER")
    reload_settings()


def test_a_step_longer_than_its_lease_renews_it(any_db, short_lease, inline):
    calls: list[int] = []
    started, release = threading.Event(), threading.Event()
    name = unique("long_step")
    flow = Workflow(name)

    @flow.step(start=True)
    def slow(ctx):
        calls.append(ctx.attempt)
        started.set()
        release.wait(10)
        return Done({"attempt": ctx.attempt})

    rid = start_run(name, {})
    wake = inline.queue.popleft()
    box: list = []
    worker = threading.Thread(
        target=lambda: box.append(execute_step(rid, wake.seq, wake.step, worker="w1"))
    )
    worker.start()
    assert started.wait(10)  # w1 holds the claim
    try:
        deadline = time.monotonic() + 2.5 * short_lease
        while time.monotonic() < deadline:
            assert execute_step(rid, wake.seq, wake.step, worker="dup").claimed is False
            reap()
            time.sleep(0.05)
    finally:
        release.set()
        worker.join(10)

    assert box[0].committed
    run = get_run(rid)
    assert run.status == "succeeded" and run.result == {"attempt": 1}
    assert calls == [1]
    assert [(s.attempt, s.status) for s in run_steps(rid)] == [(1, "succeeded")]
    assert "step.lost" not in kinds(rid)
