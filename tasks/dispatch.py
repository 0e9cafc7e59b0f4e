"""Publishes wake-ups as Celery messages: the dispatcher ``pipeline`` is given."""

from __future__ import annotations

from celery import Celery

from pipeline.dispatch import Dispatcher
from pipeline.store.decisions import Wakeup


def publisher(celery: Celery) -> Dispatcher:
    """A dispatcher sending wake-ups through ``celery`` to the step's task."""

    def send(wakeup: Wakeup, queue: str) -> None:
        celery.send_task(
            f"{wakeup.workflow}.{wakeup.step}",
            kwargs={"run_id": wakeup.run_id, "seq": wakeup.seq},
            queue=queue,
            ignore_result=True,
        )

    return send


def publish(wakeup: Wakeup, queue: str) -> None:
    """Send a wake-up through the process's Celery app (``RAVEL_DISPATCHER``'s default)."""
    from tasks import app  # importing the app installs its own dispatcher as well

    publisher(app)(wakeup, queue)
