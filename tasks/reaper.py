"""The reaper's beat job: its task, its own queue, its schedule file, and quiet logs.

Passes run every ``RAVEL_REAPER_INTERVAL`` seconds on ``RAVEL_REAPER_QUEUE``, which every
worker consumes besides its step queues, so a backlog of steps cannot delay (and expire)
them. A pass that does nothing logs nothing and sends no monitoring events.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler

from pipeline.reaper import reap
from pipeline.settings import Settings

REAP_TASK = "ravel.reap"
# Where Celery logs, at INFO, every task received and succeeded, and every beat send.
_CHATTY_LOGGERS = ("celery.worker.strategy", "celery.app.trace", "celery.beat")


def register_reaper(celery: Celery, settings: Settings) -> None:
    """The ``ravel.reap`` task and its beat schedule on the reaper queue."""

    # No events: a pass a second would bury the steps in Flower's task list. A pass lost
    # with a killed worker is simply the next one: no late ack.
    @celery.task(
        name=REAP_TASK,
        ignore_result=True,
        acks_late=False,
        send_events=False,
        serializer="json",
        shared=False,
    )
    def reap_task() -> None:
        reap()

    del reap_task
    # Added to the schedule a host's app may have of its own, never replacing it.
    celery.conf.beat_schedule = {
        **(celery.conf.beat_schedule or {}),
        "ravel-reaper": {
            "task": REAP_TASK,
            "schedule": settings.reaper_interval,
            # A pass that could not run in time is useless later: drop it instead of
            # letting passes pile up while no worker consumes the reaper queue.
            "options": {
                "expires": max(5.0, 3 * settings.reaper_interval),
                "queue": settings.reaper_queue,
            },
        },
    }


class QuietReaperPasses(logging.Filter):
    """Drops Celery's INFO lines about ``ravel.reap`` (received, succeeded, sent by beat)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but INFO-or-lower ones about the reaper task."""
        if record.levelno > logging.INFO:
            return True
        data = getattr(record, "data", None)
        if isinstance(data, dict) and data.get("name") == REAP_TASK:
            return False
        args = record.args if isinstance(record.args, tuple) else ()
        return REAP_TASK not in args


def quiet_reaper_logs() -> None:
    """Install :class:`QuietReaperPasses` on Celery's loggers (once per process)."""
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietReaperPasses) for f in logger.filters):
            logger.addFilter(QuietReaperPasses())


class Scheduler(PersistentScheduler):  # type: ignore[misc]  # celery is untyped
    """Celery's persistent beat scheduler, creating the schedule file's folder first.

    The default schedule file lives under ``RAVEL_HOME`` (``.ravel/``), which a PostgreSQL +
    Redis setup never creates otherwise: without this beat dies at start.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the folder of ``schedule_filename``, then set up as Celery does."""
        filename = kwargs.get("schedule_filename")
        if filename:
            Path(filename).expanduser().absolute().parent.mkdir(parents=True, exist_ok=True)
        super().__init__(*args, **kwargs)
        # Beat publishes only reaper passes: no task-sent event for each (Flower's list).
        self.app.conf.task_send_sent_event = False
