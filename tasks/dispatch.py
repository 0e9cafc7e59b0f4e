"""Publishes wake-ups as Celery messages: the dispatcher ``pipeline`` is given."""

from __future__ import annotations

import functools

from celery import Celery
from kombu.entity import Queue

from pipeline.dispatch import Dispatcher
from pipeline.settings import Settings, get_settings
from pipeline.store.decisions import Wakeup
from tasks.config import celery_config, task_queue

#: queue name: (the settings it was declared for, its declaration)
_declarations: dict[str, tuple[Settings, Queue]] = {}


def _declaration(name: str) -> Queue:
    """:func:`task_queue` of ``name`` under the current settings, built once per queue.

    Every start and decision publishes, and building a ``Queue`` costs more than the rest of
    what this module does per message. Sharing one is what Celery does with the queues it
    knows (kombu binds a copy of a declaration to each channel, never the original). It is
    rebuilt when the settings are reloaded, which the declaration depends on.
    """
    settings = get_settings()
    found = _declarations.get(name)
    if found is not None and found[0] is settings:
        return found[1]
    queue = task_queue(name, settings)
    _declarations[name] = (settings, queue)
    return queue


def publisher(celery: Celery) -> Dispatcher:
    """A dispatcher sending wake-ups through ``celery`` to the step's task."""

    def send(wakeup: Wakeup, queue: str) -> None:
        celery.send_task(
            f"{wakeup.workflow}.{wakeup.step}",
            # The version lets a worker that does not serve it leave the run for one that does.
            kwargs={"run_id": wakeup.run_id, "seq": wakeup.seq, "version": wakeup.version},
            # The declaration, not the name: a host's app that does not know Ravel's queues
            # would declare a missing one with its own defaults (a classic queue on RabbitMQ,
            # which the workers' quorum declaration then conflicts with).
            queue=_declaration(queue),
            # Workers accept JSON only, whatever a host's app serializes its own tasks with.
            serializer="json",
            ignore_result=True,
        )

    return send


@functools.cache
def _publisher() -> Dispatcher:
    # Publishing needs only the broker settings, not the workflows: a process that never
    # built ``tasks.app`` (a web app that only starts runs) gets an app that just sends.
    celery = Celery("ravel-publisher")
    celery.conf.update(celery_config(get_settings()))
    return publisher(celery)


def publish(wakeup: Wakeup, queue: str) -> None:
    """Send a wake-up from a process without the worker app (``RAVEL_DISPATCHER``'s default)."""
    _publisher()(wakeup, queue)
