"""The broker is only a wake-up channel: flushing Redis or deleting RabbitMQ's step queue
loses nothing, duplicates change nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from pipeline import get_run, list_runs, run_steps, start_run
from pipeline.settings import get_settings
from pipeline.workflow import versioned_queue
from tasks.config import celery_config, redelivery_after
from tests.e2e.conftest import start_cluster
from tests.support.services import rabbitmqctl, ready_messages, vhost_of
from tests.support.workers import Cluster, RedisServer, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]


@pytest.fixture
def private_redis(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def own_broker(
    pg_db: str, private_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    """Workers on PostgreSQL and a private Redis the test may flush or stop."""
    cluster = start_cluster(tmp_path, monkeypatch, pg_db, private_redis.url)
    yield cluster
    cluster.stop_all()


def test_flushall_with_20_runs_in_flight(
    own_broker: Cluster, private_redis: RedisServer, tmp_path: Path
) -> None:
    cluster = own_broker
    ledger = tmp_path / "ledger.txt"
    cluster.worker()
    cluster.worker()
    cluster.beat()
    runs = [start_run("e2e_chain", {"ledger": str(ledger), "n": 8}) for _ in range(20)]

    # Flush while runs are mid-way: some steps done, wake-ups queued and unacked.
    wait_for(
        lambda: len(ledger.read_text().splitlines()) >= 30 if ledger.exists() else False,
        60,
        "runs to be in flight",
    )
    assert private_redis.command("FLUSHALL").startswith(b"+OK")
    in_flight = [r for r in runs if get_run(r).status != "succeeded"]
    assert in_flight, "every run finished before the flush; the test proved nothing"

    wait_for(
        lambda: all(get_run(r).status == "succeeded" for r in runs),
        120,
        "all 20 runs to succeed after FLUSHALL",
    )
    _assert_each_effect_once(ledger, runs, 8)


def _assert_each_effect_once(ledger: Path, runs: list[str], n: int) -> None:
    lines = ledger.read_text().splitlines()
    repeated = [line for line, count in Counter(lines).items() if count > 1]
    assert repeated == [], f"journaled effects ran twice: {repeated}"
    assert len(lines) == len(runs) * n
    for r in runs:
        assert get_run(r).result == {"ticks": n}
        assert [s.seq for s in run_steps(r) if s.status == "succeeded"] == list(range(n))


def test_deleting_the_step_queue_mid_run(amqp_cluster: Cluster, tmp_path: Path) -> None:
    """RabbitMQ: an operator deletes the step queue with a step running (its wake-up unacked)
    and ten wake-ups queued. The worker declares the queue again (a quorum queue still) and
    the reaper re-publishes every run; no effect runs twice."""
    cluster = amqp_cluster
    ledger, marker = tmp_path / "ledger.txt", tmp_path / "marker"
    cluster.worker(concurrency=1)
    cluster.beat()
    slow = start_run("e2e_slow", {"ledger": str(ledger), "marker": str(marker), "sleep": 2})
    wait_for(marker.exists, 30, "the slow step to be running")
    runs = [start_run("e2e_chain", {"ledger": str(ledger), "n": 3}) for _ in range(10)]
    url = get_settings().broker_url
    vhost, queue = vhost_of(url), versioned_queue(get_settings().default_queue, 1)
    # The one worker process is busy: the ten wake-ups wait in the queue.
    assert ready_messages(url, queue) == 10
    rabbitmqctl("delete_queue", "-p", vhost, queue)

    everything = [slow, *runs]
    wait_for(
        lambda: all(get_run(r).status == "succeeded" for r in everything),
        90,
        f"every run to succeed after the queue was deleted\n{cluster.logs_tail()}",
    )
    lines = ledger.read_text().splitlines()
    assert sorted(lines) == sorted(
        [f"{slow}:effect", *(f"{r}:{i}" for r in runs for i in range(3))]
    )
    types = dict(
        line.split("\t")
        for line in rabbitmqctl(
            "list_queues", "-p", vhost, "--no-table-headers", "name", "type"
        ).splitlines()
    )
    assert (types[queue], types[get_settings().reaper_queue]) == ("quorum", "quorum")
    # The worker consumes again, with its consumer timeout (tasks.config.task_queue).
    consumers = rabbitmqctl(
        "list_consumers", "-p", vhost, "--no-table-headers", "queue_name", "arguments"
    ).splitlines()
    timeout = redelivery_after(get_settings()) * 1000
    assert f'{queue}\t[{{"x-consumer-timeout",{timeout}}}]' in consumers, consumers


def test_duplicate_delivery_is_a_no_op(broker_cluster: Cluster, tmp_path: Path) -> None:
    pg_cluster = broker_cluster
    ledger = tmp_path / "ledger.txt"
    pg_cluster.worker()
    run_id = start_run("e2e_chain", {"ledger": str(ledger), "n": 1})
    wait_for(lambda: get_run(run_id).status == "succeeded", 30, "the run to succeed")

    # Deliver the same wake-up again, twice, as Redis may after a redelivery.
    app = Celery("dup")
    app.conf.update(celery_config(get_settings()))
    for _ in range(2):
        app.send_task(
            "e2e_chain.tick",
            kwargs={"run_id": run_id, "seq": 0},
            queue=get_settings().default_queue,
        )
    # And a wake-up for a run that does not exist.
    app.send_task(
        "e2e_chain.tick",
        kwargs={"run_id": str(uuid.uuid4()), "seq": 0},
        queue=get_settings().default_queue,
    )
    worker = pg_cluster.procs[0]
    wait_for(
        lambda: worker.log().count("e2e_chain.tick") >= 4 * 2,
        30,
        "the duplicates to be received and finished",
    )
    assert len(run_steps(run_id)) == 1
    assert ledger.read_text().splitlines() == [f"{run_id}:0"]
    assert [r.id for r in list_runs()] == [run_id]


def test_runs_start_and_finish_across_a_broker_outage(
    own_broker: Cluster, private_redis: RedisServer, tmp_path: Path
) -> None:
    cluster = own_broker
    """F11: with Redis down, start_run still commits (the run row is the outbox); once Redis
    is back on the same port, workers reconnect and the reaper re-publishes every run."""
    ledger = tmp_path / "ledger.txt"
    cluster.worker()
    cluster.beat()
    private_redis.stop()
    started = [start_run("e2e_chain", {"ledger": str(ledger), "n": 3}) for _ in range(5)]
    assert {get_run(r).status for r in started} == {"pending"}

    restarted = RedisServer(tmp_path / "redis2", port=private_redis.port)
    try:
        wait_for(
            lambda: all(get_run(r).status == "succeeded" for r in started),
            90,
            "every run to finish after the broker came back",
        )
    finally:
        restarted.stop()
    lines = ledger.read_text().splitlines()
    assert sorted(lines) == sorted(f"{r}:{i}" for r in started for i in range(3))
