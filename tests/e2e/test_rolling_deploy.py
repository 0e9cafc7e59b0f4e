"""A rolling deploy on real workers: v1 and v2 of one workflow served side by side.

Runs stay on the version they started on; a worker leaves a run of a version it does not
serve pending (never failed) until a worker that serves it comes back.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from pipeline import get_run, run_steps, send_event, start_run
from pipeline.store import get_db, runs
from tests.support.workers import Cluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]
V1, V2 = "tests.e2e.deploy_v1", "tests.e2e.deploy_v2"
FLOW = "e2e_deploy"  # the test process does not import the deploy modules: see deploy_flows


def _all_succeed(run_ids: list[str], cluster: Cluster, timeout: float = 40) -> None:
    def done() -> bool:
        found = [get_run(r).status for r in run_ids]
        assert "failed" not in found, f"a run failed\n{cluster.logs_tail()}"
        return all(s == "succeeded" for s in found)

    try:
        wait_for(done, timeout, "every run to succeed", every=0.2)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}: {[get_run(r).status for r in run_ids]}\n{cluster.logs_tail()}"
        ) from None


def _ran_by(run_id: str) -> set[str]:
    """The workers (by process name) that ran the run's steps; each step succeeded once."""
    steps = run_steps(run_id)
    assert all(s.status == "succeeded" for s in steps), [
        (s.seq, s.attempt, s.step, s.status, s.worker, s.error) for s in steps
    ]
    return {(s.worker or "?").split("@")[0] for s in steps}


def _served(version: int) -> bool:
    return runs.get_workflow(get_db(), FLOW, version) is not None


def test_rolling_deploy_keeps_every_run_on_its_version(pg_cluster: Cluster) -> None:
    """v1 worker, then a v2 worker beside it, then v1 stopped (SIGTERM), then a worker serving
    both (the README's "keep the old one while its runs drain") replaces the v2-only one."""
    pg_cluster.beat()
    v1 = pg_cluster.worker({"RAVEL_WORKFLOWS": V1})
    wait_for(lambda: _served(1), 10, "the v1 worker to register its workflow")
    # Runs that sleep durably between ticks: live while the v2 worker joins.
    old = [start_run(FLOW, {"ticks": 4, "nap": 1.0}) for _ in range(3)]
    straggler = start_run(FLOW, {"ticks": 2, "nap": 1.0, "gate": True})
    wait_for(lambda: get_run(straggler).status == "waiting", 20, "the straggler to park")

    v2 = pg_cluster.worker({"RAVEL_WORKFLOWS": V2})
    wait_for(lambda: _served(2), 10, "the v2 worker to register its workflow")
    new = [start_run(FLOW, {"ticks": 3, "nap": 1.0}) for _ in range(3)]
    time.sleep(2)  # both versions served: wake-ups may reach a worker of the other version
    v1.stop()  # SIGTERM: warm shutdown, the step in progress commits
    assert v1.popen.returncode == 0, v1.log()[-3000:]
    failed = [r for r in [*old, straggler, *new] if get_run(r).status == "failed"]
    assert not failed, f"runs failed during the deploy: {[get_run(r).error for r in failed]}"

    # Only v2 is served now: the straggler's wake-up (v1) waits in the v1 queue, which the
    # v2 worker does not consume; the run stays pending, never failed.
    assert send_event(straggler, "go", actor="test")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        run = get_run(straggler)
        assert (run.status, run.step, run.workflow_version) == ("pending", "tick", 1), run
        time.sleep(0.2)
    _all_succeed(new, pg_cluster)

    both = pg_cluster.worker({"RAVEL_WORKFLOWS": f"{V1},{V2}"})  # v1 kept while its runs drain
    _all_succeed([*old, straggler, *new], pg_cluster)

    # Every step of a v1 run ran v1 code, on a worker serving v1; likewise for v2.
    for run_id in old:
        assert (get_run(run_id).workflow_version, get_run(run_id).result) == (1, {"ran": [1] * 5})
        assert _ran_by(run_id) <= {v1.name, both.name}
    # tick, (event) tick, finish: the first on the v1 worker, the rest after it was back
    assert get_run(straggler).result == {"ran": [1, 1, 1]}
    assert _ran_by(straggler) == {v1.name, both.name}
    # The v2-only worker never received its wake-ups (it would have logged leaving one).
    assert "v1 is not served by this worker" not in v2.log()
    for run_id in new:
        assert (get_run(run_id).workflow_version, get_run(run_id).result) == (2, {"ran": [2] * 4})
        assert _ran_by(run_id) <= {v2.name, both.name}


def test_a_v1_run_finishes_beside_a_worker_that_does_not_serve_v1(pg_cluster: Cluster) -> None:
    """A worker serving v1 and v2 joins while a v2-only worker stays: the v1 run finishes."""
    pg_cluster.beat()
    v1 = pg_cluster.worker({"RAVEL_WORKFLOWS": V1})
    wait_for(lambda: _served(1), 10, "the v1 worker to register its workflow")
    straggler = start_run(FLOW, {"ticks": 2, "nap": 1.0, "gate": True})
    wait_for(lambda: get_run(straggler).status == "waiting", 20, "the straggler to park")
    v1.stop()
    v2 = pg_cluster.worker({"RAVEL_WORKFLOWS": V2})
    assert send_event(straggler, "go", actor="test")
    time.sleep(2)
    assert get_run(straggler).status == "pending"
    both = pg_cluster.worker({"RAVEL_WORKFLOWS": f"{V1},{V2}"})
    _all_succeed([straggler], pg_cluster, timeout=20)
    assert get_run(straggler).result == {"ran": [1, 1, 1]}
    assert _ran_by(straggler) == {v1.name, both.name}
    # The v2-only worker never received its wake-ups (it would have logged leaving one).
    assert "v1 is not served by this worker" not in v2.log()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGQUIT], ids=["SIGTERM", "SIGQUIT"])
def test_an_idle_worker_stops_without_the_soft_shutdown_wait(pg_cluster: Cluster, sig: int) -> None:
    """Warm (SIGTERM) and cold (SIGQUIT, what REMAP_SIGTERM=SIGQUIT makes of a container's
    SIGTERM) shutdowns of an idle worker: no 30 s soft-shutdown wait, exit code 0."""
    worker = pg_cluster.worker()
    os.kill(worker.pid, sig)  # the main process only, as a container runtime signals PID 1
    wait_for(lambda: not worker.alive(), 20, "the idle worker to stop")
    assert worker.popen.returncode == 0, worker.log()[-3000:]
    assert "Initiating Soft Shutdown" not in worker.log()
