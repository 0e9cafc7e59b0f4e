"""Retries on real workers: durable backoff, poison steps, operator retry."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import get_run, run_history, run_steps, start_run
from tests.support.workers import Cluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]


def test_fails_twice_then_succeeds_with_policy_gaps(pg_cluster: Cluster, tmp_path: Path) -> None:
    pg_cluster.worker()
    pg_cluster.beat()
    state = {
        "ledger": str(tmp_path / "ledger"),
        "attempts": str(tmp_path / "attempts"),
        "fixed": str(tmp_path / "fixed"),
    }
    run_id = start_run("e2e_flaky", state)
    wait_for(lambda: get_run(run_id).status == "succeeded", 60, "the run to succeed")

    steps = run_steps(run_id)
    assert [(s.attempt, s.status) for s in steps] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]
    # initial_delay=1, backoff=2: the second attempt starts >= 1 s after the first failed,
    # the third >= 2 s after the second. The reaper wakes sleepers every 0.5 s.
    for before, after, delay in ((steps[0], steps[1], 1.0), (steps[1], steps[2], 2.0)):
        assert after.started_at is not None
        gap = (after.started_at - before.finished_at).total_seconds()
        assert delay <= gap < delay + 3.0, f"gap {gap:.2f}s for a {delay}s backoff"
    assert (tmp_path / "ledger").read_text().splitlines() == [f"{run_id}:before"]
    kinds = [e.kind for e in run_history(run_id)]
    assert kinds.count("step.retry_scheduled") == 2


def test_poison_step_fails_at_max_attempts(pg_cluster: Cluster, tmp_path: Path) -> None:
    pg_cluster.worker()
    pg_cluster.beat()
    poisoned = start_run("e2e_poison", {})
    healthy = start_run("e2e_chain", {"ledger": str(tmp_path / "ledger"), "n": 3})
    wait_for(lambda: get_run(poisoned).status == "failed", 90, "the poison run to fail")
    assert "max_attempts=2" in (get_run(poisoned).error or "")
    assert [s.status for s in run_steps(poisoned)] == ["lost", "lost", "failed"]
    # Other runs kept flowing on the same workers.
    wait_for(lambda: get_run(healthy).status == "succeeded", 30, "the healthy run")
