"""Ravel's part in the life of a worker and of beat, on every Celery app it is installed on.

Celery's signals are process-wide: :func:`connect` connects these handlers once, and each
acts only for an app :func:`watch` was given (Ravel's own app or a host's), never for another
Celery app of the same process.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from celery import Celery, signals

from pipeline import store
from pipeline.reaper import register_workflows
from pipeline.redact import mask_url
from pipeline.settings import Settings, get_settings
from pipeline.workflow import all_workflows
from tasks import fs_transport, slack, startup
from tasks import logs as _logs  # noqa: F401 - connects its signals
from tasks import metrics as _metrics  # noqa: F401 - connects its signals
from tasks.config import task_queue
from tasks.heartbeat import Heartbeat

log = logging.getLogger("ravel.worker")

_apps: weakref.WeakSet[Celery] = weakref.WeakSet()
_heartbeat: Heartbeat | None = None
_connected = False


def watch(celery: Celery) -> None:
    """Let the handlers act for ``celery``."""
    _apps.add(celery)


def _ours(app: Any) -> bool:
    return app is not None and app in _apps


def _after_fork(**_: Any) -> None:
    # Pooled connections must not cross fork(); no I/O here (Celery kills a child whose
    # init takes over 4 s).
    store.after_fork()


def _before_consuming(instance: Any = None, **_: Any) -> None:
    # Logging is set up, the pool and the consumer are not started yet: the last moment to
    # refuse to serve, and to add the reaper queue to a `-Q` list that left it out.
    if not _ours(getattr(instance, "app", None)):
        return
    startup.check_database("worker")
    slack.before_pool()  # before the pool forks: every pool process inherits the handler
    settings = get_settings()
    queues = instance.app.amqp.queues
    # The declaration, not the name: a name would re-add it as a plain (classic) queue.
    queues.select_add(task_queue(settings.reaper_queue, settings))
    _select_versions_of(queues, settings)


def _select_versions_of(queues: Any, settings: Settings) -> None:
    """`-Q llm` names the queue a step is configured with; its wake-ups travel in one queue
    per workflow version (``llm.v1``, ``llm.v2``): consume those of the versions served."""
    if queues._consume_from is None:  # no -Q: every queue of Ravel's is consumed
        return
    selected = set(queues._consume_from)
    for flow in all_workflows():
        for step in flow.steps:
            if flow.queue_of(step, settings.default_queue) in selected:
                queues.select_add(
                    task_queue(flow.broker_queue(step, settings.default_queue), settings)
                )


def _beat_starting(sender: Any = None, **_: Any) -> None:
    if _ours(getattr(sender, "app", None)):
        startup.check_database("beat")


def _on_ready(sender: Any = None, **_: Any) -> None:
    global _heartbeat
    if not _ours(getattr(sender, "app", None)):
        return
    settings = get_settings()
    # CELERY_BROKER_URL silently wins over RAVEL_BROKER_URL inside Celery (Celery's
    # broker_url reads it): say which is used. The embedded broker shows as configured.
    broker = str(sender.app.conf.broker_url or "")
    if not broker or broker.startswith(fs_transport.ALIAS):
        broker = settings.broker_url
    log.info(
        "ravel worker ready: broker %s, database %s",
        mask_url(broker),
        mask_url(settings.database_url),
    )
    try:
        names = register_workflows()
        log.info("serving workflows: %s", ", ".join(names) or "none (set RAVEL_WORKFLOWS)")
    except Exception as exc:
        log.error(
            "could not record the workflows in the database (%s); start_run from "
            "processes without the workflow code will not find them yet",
            " ".join(str(exc).split())[:300],
        )
    _heartbeat = Heartbeat(sender.hostname)
    _heartbeat.beat(starting=True)
    _heartbeat.start()
    slack.start()


def _on_shutdown(**_: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
    slack.stop()


def connect() -> None:
    """Connect the handlers (once per process)."""
    global _connected
    if _connected:
        return
    _connected = True
    # weak=False: the handlers are module functions, but say so rather than rely on it.
    signals.worker_process_init.connect(_after_fork, weak=False)
    signals.celeryd_after_setup.connect(_before_consuming, weak=False)
    signals.beat_init.connect(_beat_starting, weak=False)
    signals.worker_ready.connect(_on_ready, weak=False)
    signals.worker_shutdown.connect(_on_shutdown, weak=False)


__all__ = ["connect", "watch"]
