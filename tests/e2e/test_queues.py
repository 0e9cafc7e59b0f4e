"""Wake-ups travel in one queue per workflow version; `-Q <queue>` still names the queue a
step is configured with."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import get_run, start_run
from pipeline.settings import get_settings
from tests.support.workers import Cluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]


def test_a_worker_started_with_q_default_consumes_the_versioned_queues(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    queue = get_settings().default_queue
    worker = pg_cluster.celery(
        "wq",
        [
            "worker",
            "-Q",
            queue,
            "-c",
            "1",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ],
    )
    wait_for(lambda: "ready." in worker.log() or not worker.alive(), 60, "the worker")
    run_id = start_run("e2e_chain", {"ledger": str(tmp_path / "ledger"), "n": 2})
    wait_for(lambda: get_run(run_id).status == "succeeded", 30, "the run")
    # The banner lists what it consumes: the named queue, its per-version queue, the reaper's.
    banner = worker.log().split("[tasks]")[0]
    assert f"{queue}.v1 " in banner and f"{queue}.reaper " in banner
