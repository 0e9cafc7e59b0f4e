"""Celery settings that are part of Ravel's design, each with the reason it is set."""

from __future__ import annotations

from typing import Any

from pipeline.settings import Settings
from tasks import fs_transport


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Transport options for the configured broker (Redis or the embedded filesystem one)."""
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
    return {
        # Redis redelivers an unacked message after this, even while it still runs: keep it
        # well above the hard time limit of a step.
        "visibility_timeout": int(4 * (settings.step_time_limit + 60)),
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
        "task_acks_late": True,
        # Without this a child killed by SIGKILL/OOM is still acked and its wake-up lost.
        "task_reject_on_worker_lost": True,
        # A raising step already recorded its failure and retry time in the database.
        "task_acks_on_failure_or_timeout": True,
        # Reserve one message at a time: prefetched messages of a hard-killed worker come
        # back only after the visibility timeout.
        "worker_prefetch_multiplier": 1,
        # No result backend on the correctness path: the database is the only truth.
        "task_ignore_result": True,
        "result_backend": None,
        # Workers may start before the broker; retry forever instead of giving up.
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_channel_error_retry": True,
        # Bound every step; the soft limit lets the step record its failed attempt.
        "task_soft_time_limit": settings.step_time_limit,
        "task_time_limit": settings.step_time_limit + 60,
        # After a broker disconnect a late-ack task cannot be acked and is redelivered; stop
        # it rather than run it twice in parallel (safe: commits are fenced).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Flower needs task events; SENT shows published wake-ups.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # Deploys: on SIGTERM (or SIGQUIT with REMAP_SIGTERM=SIGQUIT) let running steps
        # finish and commit for up to 30 s, then stop; an idle worker stops at once. A step
        # cut short is re-driven from its checkpoint by the reaper.
        "worker_soft_shutdown_timeout": 30.0,
        "worker_enable_soft_shutdown_on_idle": True,
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
    }
