"""The reaper on real processes: beat from a fresh folder, its own queue, the no-reaper alarm."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from pipeline import get_run, list_runs, start_run
from pipeline.testing.cluster import Proc
from tests.support.workers import Cluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]
FLOWS = "tests.e2e.flows,tests.e2e.health_flows"


def _in_empty_folder(cluster: Cluster, tmp_path: Path, name: str, args: list[str]) -> Proc:
    """``celery -A tasks <args>`` in a new folder, RAVEL_HOME unset: it finds its `.ravel/`."""
    folder = tmp_path / f"{name}-cwd"
    folder.mkdir()
    return cluster.celery(name, [*args, "--loglevel", "INFO"], {"RAVEL_HOME": ""}, cwd=folder)


def _reaper_passes(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT coalesce(sum(passes), 0) FROM ravel_reapers")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_worker_with_beat_from_an_empty_folder_retries_on_time(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    """README's `celery -A tasks worker -B` in a folder without `.ravel/`, on PostgreSQL + Redis:
    the embedded beat creates its schedule file and the 1 s retries happen."""
    worker = _in_empty_folder(
        pg_cluster,
        tmp_path,
        "wb",
        ["worker", "-B", "-c", "2", "-Q", pg_cluster.env["RAVEL_DEFAULT_QUEUE"]],
    )
    wait_for(lambda: "ready." in worker.log() or not worker.alive(), 60, "the worker")
    state = {
        "ledger": str(tmp_path / "ledger"),
        "attempts": str(tmp_path / "attempts"),
        "fixed": str(tmp_path / "fixed"),
    }
    run_id = start_run("e2e_flaky", state)  # fails twice, retried after 1 s then 2 s
    wait_for(
        lambda: get_run(run_id).status == "succeeded",
        45,
        f"the retried run to succeed\n{pg_cluster.logs_tail()}",
    )
    log = worker.log()
    assert worker.alive()
    assert "FileNotFoundError" not in log and "Traceback" not in log, log[-3000:]
    assert list((tmp_path / "wb-cwd" / ".ravel").glob("celerybeat-schedule*"))


def test_beat_starts_and_stays_up_in_an_empty_folder(pg_cluster: Cluster, tmp_path: Path) -> None:
    beat = _in_empty_folder(pg_cluster, tmp_path, "beat", ["beat"])
    pg_cluster.worker()
    before = _reaper_passes(pg_cluster.env["RAVEL_DATABASE_URL"])
    time.sleep(6)
    assert beat.alive(), beat.log()[-3000:]
    assert "Traceback" not in beat.log()
    # Its passes reach the worker, on the reaper queue the worker adds to its -Q list.
    assert _reaper_passes(pg_cluster.env["RAVEL_DATABASE_URL"]) >= before + 5


def test_reaper_passes_go_on_behind_a_backlog_of_steps(pg_cluster: Cluster) -> None:
    """With one worker process busy with a backlog far longer than a pass's expiry, passes
    still run (their own queue): a sleeping run is woken on time, and passes stay silent."""
    db_url = pg_cluster.env["RAVEL_DATABASE_URL"]
    worker = pg_cluster.worker({"RAVEL_WORKFLOWS": FLOWS}, concurrency=1)
    sleeper = start_run("hb_nap", {"seconds": 2})
    wait_for(lambda: get_run(sleeper).status == "sleeping", 30, "the run to sleep")
    # 250 steps of 75 ms: about 19 s of work for one process, the old expiry was 5 s.
    for _ in range(250):
        start_run("hb_busy", {"ms": 75})
    passes = _reaper_passes(db_url)
    pg_cluster.beat()
    wait_for(
        lambda: get_run(sleeper).status != "sleeping",
        8,
        f"the reaper to wake the sleeping run\n{pg_cluster.logs_tail()}",
    )
    wait_for(lambda: _reaper_passes(db_url) >= passes + 10, 15, "ten reaper passes")
    backlog = len(list_runs(status="pending", workflow="hb_busy", limit=1000))
    assert backlog > 50, f"the backlog drained too soon ({backlog} left) to prove anything"
    log = worker.log()
    assert "ravel.reap[" not in log and "no reaper pass" not in log, log[-2000:]


def test_a_worker_without_reaper_says_so_loudly(pg_cluster: Cluster) -> None:
    """No beat anywhere: after max(30 s, 10 x interval) the worker logs one ERROR line."""
    worker = pg_cluster.worker()
    wait_for(lambda: "no reaper pass" in worker.log(), 60, "the no-reaper alarm")
    [line] = [ln for ln in worker.log().splitlines() if "no reaper pass" in ln]
    assert "ERROR" in line
    assert "run `celery -A tasks beat` or a worker with -B" in line
    pg_cluster.beat()
    wait_for(
        lambda: "reaper passes are recorded again" in worker.log(),
        30,
        "the alarm to clear once beat runs",
    )
