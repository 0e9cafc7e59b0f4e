"""A parked run holds nothing, survives every process restarting, and resumes on approval."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from pipeline import approve, get_run, start_run
from pipeline.settings import get_settings
from tests.support.workers import Cluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]


def test_parked_run_survives_restart_of_everything(cluster: Cluster, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    cluster.worker()
    cluster.beat()
    run_id = start_run("e2e_approval", {"ledger": str(ledger), "items": 5})
    wait_for(lambda: get_run(run_id).status == "waiting", 30, "the run to park")

    parked = get_run(run_id)
    assert parked.wait is not None and parked.wait.approvers == ["finance"]
    if get_settings().broker_url.startswith("redis"):
        client = redis.Redis.from_url(get_settings().broker_url)

        def held_in_redis() -> list[bytes]:
            queued = [m for key in client.scan_iter(count=1000)
                      if client.type(key) == b"list" for m in client.lrange(key, 0, -1)]
            unacked = client.hvals("unacked")
            keys = list(client.scan_iter(count=1000))
            return [m for m in (*queued, *unacked, *keys) if run_id.encode() in m]

        # The worker acks the parking step's message just after its commit; from then on no
        # message is queued or reserved for the run, and no Redis key mentions it.
        wait_for(lambda: not held_in_redis(), 10, "the parking step's message to be acked")
        time.sleep(1)
        assert held_in_redis() == []
    else:
        assert list((get_settings().broker_folder / "queue").glob("*")) == []

    # No worker is busy with it: no lease is held.
    assert parked.status == "waiting"
    # Every worker and beat process goes away; new ones come up later.
    cluster.stop_all()
    assert get_run(run_id).status == "waiting"
    cluster.worker()
    cluster.beat()

    approve(run_id, "finance", {"note": "ok, 3 days later"})
    wait_for(lambda: get_run(run_id).status == "succeeded", 30, "the run to resume")
    done = get_run(run_id)
    assert done.result == {"submitted": True, "proposal": f"{run_id}:draft"}
    assert done.state["items"] == 5
    assert ledger.read_text().splitlines() == [f"{run_id}:draft", f"{run_id}:submit"]
