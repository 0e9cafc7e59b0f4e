"""What tasks.config gives each broker (no services): RabbitMQ's settings, Redis unchanged."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from celery import Celery

from pipeline.settings import Settings
from tasks.config import broker_transport_options, celery_config, is_amqp, task_queue


def _settings(tmp_path: Path, broker_url: str, step_time_limit: float = 300.0) -> Settings:
    base = Settings(home=tmp_path, database_url="sqlite://", broker_url=broker_url, workflows=())
    return replace(base, step_time_limit=step_time_limit)


@pytest.mark.parametrize(
    "url", ["amqp://guest:guest@127.0.0.1:5672//", "pyamqp://h/v", "amqps://h:5671/v"]
)
def test_amqp_urls_are_recognised(url: str) -> None:
    assert is_amqp(url)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://h/0", "filesystem://", "sqs://", "memory://"]
)
def test_other_urls_are_not_amqp(url: str) -> None:
    assert not is_amqp(url)


def test_rabbitmq_gets_quorum_queues_confirms_and_a_long_consumer_timeout(
    tmp_path: Path,
) -> None:
    s = _settings(tmp_path, "amqp://guest:guest@127.0.0.1:5672//", step_time_limit=900)
    config = celery_config(s)
    assert broker_transport_options(s) == {"confirm_publish": True}
    assert config["broker_transport_options"] == {"confirm_publish": True}
    assert config["task_default_queue_type"] == "quorum"
    assert config["task_create_missing_queue_type"] == "quorum"
    assert config["worker_detect_quorum_queues"] is True
    assert config["broker_heartbeat"] == 60
    queue = task_queue("ravel.reaper", s)
    assert queue.queue_arguments == {"x-queue-type": "quorum"}
    assert queue.durable and not queue.auto_delete
    timeout_ms = queue.consumer_arguments["x-consumer-timeout"]
    # Longer than a step may hold its wake-up: the hard limit, and a wait in the prefetch.
    assert timeout_ms > 2 * config["task_time_limit"] * 1000
    # Longer than RabbitMQ's 30 min default here: the limit follows RAVEL_STEP_TIME_LIMIT.
    assert timeout_ms > 30 * 60 * 1000


def test_a_process_that_only_publishes_declares_quorum_queues_too(tmp_path: Path) -> None:
    """A web app publishing wake-ups knows no queue list; RabbitMQ would refuse its classic
    declaration of a queue the workers declared as a quorum queue."""
    s = _settings(tmp_path, "amqp://guest:guest@127.0.0.1:5672//")
    app = Celery("publisher")
    app.conf.update(celery_config(s))
    assert app.amqp.queues[s.default_queue].queue_arguments == {"x-queue-type": "quorum"}
    assert app.amqp.queues["ravel.v7"].queue_arguments == {"x-queue-type": "quorum"}


def test_redis_keeps_its_settings(tmp_path: Path) -> None:
    s = _settings(tmp_path, "redis://127.0.0.1:6379/0")
    config = celery_config(s)
    options = broker_transport_options(s)
    assert options["visibility_timeout"] == 4 * (300 + 60)
    assert "confirm_publish" not in options
    assert not {
        "task_default_queue_type",
        "task_create_missing_queue_type",
        "broker_heartbeat",
    } & set(config)
    queue = task_queue("ravel", s)
    assert queue.queue_arguments is None and queue.consumer_arguments is None
    app = Celery("publisher")
    app.conf.update(config)
    assert app.amqp.queues["ravel.v7"].queue_arguments is None
