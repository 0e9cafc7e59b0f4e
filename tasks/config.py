"""Celery settings that are part of Ravel's design, each with the reason it is set."""

from __future__ import annotations

from typing import Any

from kombu.entity import Queue

from pipeline.settings import Settings
from tasks import fs_transport

#: URL schemes of kombu's AMQP 0-9-1 transport (RabbitMQ).
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def is_amqp(url: str) -> bool:
    """Whether ``url`` names a RabbitMQ (AMQP 0-9-1) broker."""
    return url.split("://", 1)[0].split("+", 1)[0] in AMQP_SCHEMES


def redelivery_after(settings: Settings) -> int:
    """Seconds a broker must let a delivered wake-up stay unacked before taking it back.

    A wake-up is acked after its step (``task_acks_late``). It may wait in the worker's
    prefetch behind a running step, then run up to the hard time limit itself: give it four
    hard limits, so a broker never hands a live step's wake-up to a second worker.
    """
    return int(4 * (settings.step_time_limit + 60))


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Transport options for the configured broker (Redis, RabbitMQ or the filesystem one)."""
    if settings.broker_url.startswith("filesystem"):
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            # Where a consumer claims a message by renaming it (same filesystem as the queue).
            "processed_folder": str(folder / "processed"),
            # Broadcast bindings (worker control); kombu's default is ./control in the cwd.
            "control_folder": str(folder / "control"),
            "store_processed": False,
            # kombu's filesystem transport polls the folder; its 1 s default would add up to a
            # second to every step hand-off.
            "polling_interval": 0.01,
        }
    if is_amqp(settings.broker_url):
        return {
            # basic.publish returns before RabbitMQ has the message; a publish it then refuses
            # (over its size limit, a quorum queue without a majority of its nodes) would be
            # lost without an error. With confirms each publish waits until the broker has
            # stored the message, and a nack raises, so start_run and the reaper see it (the
            # run row stays due for a re-publish either way).
            "confirm_publish": True,
        }
    return {
        # Redis redelivers an unacked message after this, even while it still runs.
        "visibility_timeout": redelivery_after(settings),
        # Detect dead connections instead of hanging on them.
        "socket_timeout": 30,
        "socket_connect_timeout": 10,
        "socket_keepalive": True,
        "retry_on_timeout": True,
        "health_check_interval": 25,
    }


def broker_url(settings: Settings) -> str:
    """The broker URL Celery uses: the embedded default gets Ravel's safe filesystem transport."""
    if settings.broker_url.startswith("filesystem://"):
        return fs_transport.ALIAS + settings.broker_url.removeprefix("filesystem")
    return settings.broker_url


def task_queue(name: str, settings: Settings) -> Queue:
    """The declaration of one of Ravel's queues (step queues and the reaper queue)."""
    if not is_amqp(settings.broker_url):
        return Queue(name)
    return Queue(
        name,
        # Quorum queues are durable and replicated (Raft): a wake-up confirmed to the
        # publisher survives the loss of a RabbitMQ node. Every process must declare the
        # same type, or RabbitMQ refuses the declaration (PRECONDITION_FAILED): see
        # task_default_queue_type below for processes that only publish.
        queue_arguments={"x-queue-type": "quorum"},
        # RabbitMQ takes back a delivery not acked within its consumer timeout (30 min by
        # default) and closes the channel: a long step would be handed to a second worker
        # while it runs. A consumer argument (RabbitMQ >= 3.12; older servers ignore it and
        # need `consumer_timeout` in rabbitmq.conf) rather than a queue argument: each worker
        # states the limit of its own RAVEL_STEP_TIME_LIMIT, and a deploy that changes it
        # never conflicts with how the queue was first declared.
        consumer_arguments={"x-consumer-timeout": redelivery_after(settings) * 1000},
    )


def _amqp_config(settings: Settings) -> dict[str, Any]:
    if not is_amqp(settings.broker_url):
        return {}
    return {
        # Queues a process declares without knowing Ravel's queue list (a web app that only
        # publishes, `celery -Q` naming a queue) must be quorum queues too: RabbitMQ refuses
        # to redeclare a queue with another type.
        "task_default_queue_type": "quorum",
        "task_create_missing_queue_type": "quorum",
        # Quorum queues refuse global QoS (a channel-wide prefetch): the worker must use
        # per-consumer prefetch. True is Celery's default; stated because it is required.
        "worker_detect_quorum_queues": True,
        # With quorum queues the worker declares Celery's 28 delay queues for countdown/ETA
        # messages. Ravel sends none (durable sleeps and retry times live in the database),
        # so they stay empty: classic ones cost no Raft group each.
        "broker_native_delayed_delivery_queue_type": "classic",
        # AMQP heartbeats: a worker notices a dead broker or a silently dropped connection
        # within about two intervals and reconnects; RabbitMQ notices a dead worker as fast
        # and requeues its unacked wake-ups (there is no visibility timeout on AMQP).
        "broker_heartbeat": 60,
    }


def step_task_options(settings: Settings) -> dict[str, Any]:
    """Options of every step task: those of :func:`celery_config`'s settings that Celery
    takes per task, so they hold on a host's Celery app whatever its own defaults are (see
    :mod:`tasks.host`; each one's reason is given in :func:`celery_config`)."""
    return {
        "acks_late": True,
        "reject_on_worker_lost": True,
        "acks_on_failure_or_timeout": True,
        "ignore_result": True,
        "serializer": "json",
        "soft_time_limit": settings.step_time_limit,
        "time_limit": settings.step_time_limit + 60,
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for these settings."""
    transport = broker_transport_options(settings)
    return {
        "broker_url": broker_url(settings),
        "broker_transport_options": transport,
        # Messages carry ids only. Accepting pickle would let anyone who can write to the
        # broker run code in the workers, whatever the serializer used to send.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Ack after the step, not before: a worker that dies mid-step gets its wake-up back.
        # Redis returns it after the visibility timeout (or when the channel closes);
        # RabbitMQ as soon as the worker's connection closes, to any other consumer.
        "task_acks_late": True,
        # Without this a child killed by SIGKILL/OOM is still acked and its wake-up lost.
        # (RabbitMQ 4 quorum queues give up on a message returned too often, delivery-limit
        # 20 by default; the reaper re-publishes the run's wake-up from the database.)
        "task_reject_on_worker_lost": True,
        # A raising step already recorded its failure and retry time in the database.
        "task_acks_on_failure_or_timeout": True,
        # Reserve one message at a time: prefetched messages of a hard-killed worker come
        # back only after the visibility timeout (Redis). On RabbitMQ this is per consumer.
        "worker_prefetch_multiplier": 1,
        # No result backend on the correctness path: the database is the only truth.
        "task_ignore_result": True,
        "result_backend": None,
        # Workers may start before the broker; retry forever instead of giving up.
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # A channel error (RabbitMQ closes a channel on a consumer timeout or a deleted
        # queue) reconnects instead of stopping the worker.
        "broker_channel_error_retry": True,
        # Bound every step; the soft limit lets the step record its failed attempt.
        "task_soft_time_limit": settings.step_time_limit,
        "task_time_limit": settings.step_time_limit + 60,
        # After a broker disconnect a late-ack task cannot be acked (delivery tags belong to
        # the lost channel) and the broker has already given its wake-up to another worker:
        # stop it rather than run it twice in parallel (safe: commits are fenced).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Flower needs task events; SENT shows published wake-ups.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # Deploys: SIGTERM is Celery's warm shutdown (running steps finish and commit, then
        # the worker stops). SIGQUIT (or SIGTERM with REMAP_SIGTERM=SIGQUIT) is the cold one:
        # while a step runs, Celery waits these 30 s before cancelling it, and a step cut
        # short is re-driven from its checkpoint by the reaper. An idle worker stops at once:
        # the wait on idle exists for ETA messages to be re-queued, and Ravel sends none.
        "worker_soft_shutdown_timeout": 30.0,
        "worker_enable_soft_shutdown_on_idle": False,
        # Recycle leaky children after the task they are running.
        "worker_max_memory_per_child": 512_000,
        "timezone": "UTC",
        "enable_utc": True,
        "task_default_queue": settings.default_queue,
        # Beat's schedule file under RAVEL_HOME; Ravel's scheduler creates the folder (a
        # PostgreSQL + Redis setup has no other reason to) and sends no task-sent events.
        "beat_schedule_filename": str(settings.home / "celerybeat-schedule"),
        "beat_scheduler": "tasks.reaper:Scheduler",
        "worker_hijack_root_logger": False,
        # Celery's own consumer stops the whole worker on some malformed messages (a body
        # that is not [args, kwargs, options]): Ravel's drops such a message in a log line.
        "worker_consumer": "tasks.consumer:Consumer",
        **_amqp_config(settings),
    }
