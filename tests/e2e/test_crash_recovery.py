"""SIGKILL at the moments that matter: the run completes, journaled effects run once."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from pipeline import get_run, run_history, run_steps, start_run
from pipeline.settings import get_settings
from tasks.config import is_amqp
from tests.support.workers import Cluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait_status(run_id: str, status: str, cluster: Cluster, timeout: float = 60) -> None:
    try:
        wait_for(lambda: get_run(run_id).status == status, timeout, f"run {status}")
    except AssertionError:
        raise AssertionError(
            f"run is {get_run(run_id).status}, not {status}\n{cluster.logs_tail()}"
        ) from None


def _received(log: str, task: str) -> list[str]:
    """Ids of the ``task`` messages a worker log shows as received."""
    return re.findall(rf"Task {re.escape(task)}\[([0-9a-f-]+)\] received", log)


def test_sigkill_after_effect_before_commit(every_cluster: Cluster, tmp_path: Path) -> None:
    cluster = every_cluster
    ledger = tmp_path / "ledger.txt"
    fired = tmp_path / "faults" / "after_effect_call_before_commit@pay"
    worker = cluster.worker({"RAVEL_FAULTS": "after_effect_call_before_commit@pay=kill"})
    run_id = start_run("e2e_charge", {"ledger": str(ledger)})

    wait_for(fired.exists, 30, "the fault to fire in the worker")
    # The effect ran and is journaled; the step never committed. Now lose the whole worker.
    worker.kill(signal.SIGKILL)
    assert get_run(run_id).status == "running"
    assert _lines(ledger) == [f"{run_id}:charge"]

    second = cluster.worker()
    cluster.beat()
    _wait_status(run_id, "succeeded", cluster)
    if is_amqp(get_settings().broker_url):
        # No visibility timeout on RabbitMQ: the unacked wake-up came back to the queue when
        # the killed worker's connection closed, and the next worker received it again.
        killed = _received(worker.log(), "e2e_charge.pay")[0]
        wait_for(
            lambda: killed in _received(second.log(), "e2e_charge.pay"),
            10,
            "the killed step's message to be redelivered",
        )

    assert _lines(ledger) == [f"{run_id}:charge"], "the effect's function ran again"
    assert get_run(run_id).result == {"paid": True}
    attempts = [(s.step, s.attempt, s.status) for s in run_steps(run_id)]
    assert ("pay", 1, "lost") in attempts
    assert [a for a in attempts if a[2] == "succeeded"] == [
        ("pay", 2, "succeeded"),
        ("receipt", 1, "succeeded"),
    ]
    kinds = [e.kind for e in run_history(run_id)]
    assert kinds.count("step.lost") == 1


def test_crash_between_commit_and_publish_is_redriven(
    every_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = every_cluster
    ledger = tmp_path / "ledger.txt"
    fired = tmp_path / "faults" / "after_commit_before_publish@pay"
    cluster.worker({"RAVEL_FAULTS": "after_commit_before_publish@pay=kill"})
    cluster.beat()
    run_id = start_run("e2e_charge", {"ledger": str(ledger)})

    wait_for(fired.exists, 30, "the fault to fire in the worker")
    committed = get_run(run_id)
    assert committed.status == "pending" and committed.step == "receipt"
    # Nobody published the next wake-up: the reaper must notice and re-publish it.
    _wait_status(run_id, "succeeded", cluster, timeout=30)
    history = run_history(run_id)
    published_to_done = (history[-1].at - committed.updated_at).total_seconds()
    assert published_to_done < 15, f"re-driven only after {published_to_done:.1f}s"
    assert _lines(ledger) == [f"{run_id}:charge"]
    assert [s.step for s in run_steps(run_id)] == ["pay", "receipt"]


def test_a_paused_lease_owner_cannot_commit_after_takeover(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    """F18: a worker frozen (SIGSTOP) past its lease loses the run to another; when it
    thaws, its commit matches nothing (fencing token) and it publishes nothing."""
    ledger, marker = tmp_path / "ledger", tmp_path / "marker"
    frozen = pg_cluster.worker(concurrency=1)
    run_id = start_run("e2e_slow", {"ledger": str(ledger), "marker": str(marker), "sleep": 6})
    wait_for(marker.exists, 30, "the first attempt to journal its effect")
    frozen.kill(signal.SIGSTOP)  # the whole worker, lease renewal thread included
    try:
        pg_cluster.worker(concurrency=1)
        pg_cluster.beat()
        _wait_status(run_id, "succeeded", pg_cluster, timeout=60)
        assert get_run(run_id).result == {"attempt": 2}
    finally:
        frozen.kill(signal.SIGCONT)
    wait_for(lambda: "lease lost" in frozen.log(), 30, "the thawed worker to drop its commit")
    assert [(s.attempt, s.status) for s in run_steps(run_id)] == [(1, "lost"), (2, "succeeded")]
    assert get_run(run_id).state["done_by_attempt"] == 2
    assert _lines(ledger) == [f"{run_id}:effect"]


def test_sigterm_mid_step_lets_the_step_commit(broker_cluster: Cluster, tmp_path: Path) -> None:
    """F7: a rolling deploy's SIGTERM waits for the running step, which commits once."""
    pg_cluster = broker_cluster
    ledger, marker = tmp_path / "ledger", tmp_path / "marker"
    worker = pg_cluster.worker(concurrency=1)
    run_id = start_run("e2e_slow", {"ledger": str(ledger), "marker": str(marker), "sleep": 2})
    wait_for(marker.exists, 30, "the step to be running")
    worker.stop(timeout=60)  # SIGTERM to the main process
    assert get_run(run_id).status == "succeeded", worker.log()[-3000:]
    assert [(s.attempt, s.status) for s in run_steps(run_id)] == [(1, "succeeded")]
    assert _lines(ledger) == [f"{run_id}:effect"]


def test_sigterm_to_the_whole_group_kills_the_step_and_the_reaper_redrives_it(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    """The README's systemd caveat: SIGTERM to every process of the worker (``KillMode=
    control-group``) reaches the pool process too, which dies mid-step (Celery keeps SIGTERM's
    default action there); the run is re-driven after the lease, its effect journaled once."""
    ledger, marker = tmp_path / "ledger", tmp_path / "marker"
    worker = pg_cluster.worker(concurrency=1)
    # 4 s: the signal surely lands while the step sleeps, however late this test polls.
    run_id = start_run("e2e_slow", {"ledger": str(ledger), "marker": str(marker), "sleep": 4})
    wait_for(marker.exists, 30, "the step to be running")
    worker.kill(signal.SIGTERM)  # the process group, as systemd's default sends it
    assert get_run(run_id).status == "running"  # the step did not commit
    pg_cluster.worker(concurrency=1)
    pg_cluster.beat()
    _wait_status(run_id, "succeeded", pg_cluster)
    assert [(s.attempt, s.status) for s in run_steps(run_id)] == [(1, "lost"), (2, "succeeded")]
    assert _lines(ledger) == [f"{run_id}:effect"]
