"""A parked run holds nothing, survives every process restarting, and resumes on approval."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from pipeline import approve, get_run, start_run
from pipeline.settings import get_settings
from tasks.config import is_amqp
from tests.support.services import queue_depths, ready_messages, vhost_of
from tests.support.workers import Cluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]


def _step_queues() -> dict[str, tuple[int, int]]:
    """RabbitMQ: the test's step queues (default and per version) and their depths."""
    settings = get_settings()
    depths = queue_depths(vhost_of(settings.broker_url))
    return {
        q: d
        for q, d in depths.items()
        if q.startswith(settings.default_queue) and q != settings.reaper_queue
    }


def test_parked_run_survives_restart_of_everything(every_cluster: Cluster, tmp_path: Path) -> None:
    cluster = every_cluster
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
            queued = [
                m
                for key in client.scan_iter(count=1000)
                if client.type(key) == b"list"
                for m in client.lrange(key, 0, -1)
            ]
            unacked = client.hvals("unacked")
            keys = list(client.scan_iter(count=1000))
            return [m for m in (*queued, *unacked, *keys) if run_id.encode() in m]

        # The worker acks the parking step's message just after its commit; from then on no
        # message is queued or reserved for the run, and no Redis key mentions it.
        wait_for(lambda: not held_in_redis(), 10, "the parking step's message to be acked")
        time.sleep(1)
        assert held_in_redis() == []
    elif is_amqp(get_settings().broker_url):
        # Acked after its commit: no step queue holds a message, ready or unacked
        # (rabbitmqctl's counts of quorum queues lag by a few seconds).
        wait_for(
            lambda: set(_step_queues().values()) == {(0, 0)},
            15,
            "the parking step's message to be acked",
        )
    else:
        assert list((get_settings().broker_folder / "queue").glob("*")) == []

    # No worker is busy with it: no lease is held.
    assert parked.status == "waiting"
    # Every worker and beat process goes away; new ones come up later.
    cluster.stop_all()
    assert get_run(run_id).status == "waiting"
    if is_amqp(get_settings().broker_url):
        # An unacked message would be back in its queue now that its consumer is gone.
        url, queues = get_settings().broker_url, list(_step_queues())
        assert queues, "the test's step queues were not found"
        assert {q: ready_messages(url, q) for q in queues} == dict.fromkeys(queues, 0)
    cluster.worker()
    cluster.beat()

    approve(run_id, "finance", {"note": "ok, 3 days later"})
    wait_for(lambda: get_run(run_id).status == "succeeded", 30, "the run to resume")
    done = get_run(run_id)
    assert done.result == {"submitted": True, "proposal": f"{run_id}:draft"}
    assert done.state["items"] == 5
    assert ledger.read_text().splitlines() == [f"{run_id}:draft", f"{run_id}:submit"]
