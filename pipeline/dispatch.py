"""Publishing wake-ups, without importing Celery.

The transport registers a dispatcher (``tasks`` does, on import); a process that never
imported it (a web app that only calls ``start_run``) loads the one named by
``RAVEL_DISPATCHER``. A publish that fails is logged, never raised: the committed run row is
the outbox, and the reaper re-publishes overdue wake-ups.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable

from pipeline.errors import ConfigurationError
from pipeline.settings import get_settings
from pipeline.store import get_db, runs
from pipeline.store.decisions import Wakeup
from pipeline.workflow import find_workflow, versioned_queue

log = logging.getLogger("ravel.dispatch")

#: publishes one wake-up to the named queue
Dispatcher = Callable[[Wakeup, str], None]

_dispatcher: Dispatcher | None = None
_queues: dict[str, tuple[float, dict[str, str]]] = {}
_QUEUE_CACHE_SECONDS = 30.0


def set_dispatcher(fn: Dispatcher | None) -> None:
    """Install the function that publishes wake-ups (None: load ``RAVEL_DISPATCHER`` lazily)."""
    global _dispatcher
    _dispatcher = fn


def _load() -> Dispatcher:
    global _dispatcher
    if _dispatcher is None:
        target = get_settings().dispatcher
        module, _, attr = target.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr or "publish")
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(
                f"RAVEL_DISPATCHER={target!r} cannot be loaded ({exc}); "
                "use module:function, e.g. tasks.dispatch:publish"
            ) from exc
        _dispatcher = fn
    return _dispatcher


def queue_for(workflow: str, step: str, version: int) -> str:
    """The broker queue of a workflow version's step (see :func:`versioned_queue`): from
    this process, else as a worker recorded it in the database."""
    default = get_settings().default_queue
    flow = find_workflow(workflow, version)
    if flow is not None:
        return flow.broker_queue(step, default)
    key = f"{workflow}/{version}"
    cached = _queues.get(key)
    if cached is None or time.monotonic() - cached[0] > _QUEUE_CACHE_SECONDS:
        row = runs.get_workflow(get_db(), workflow, version) or runs.get_workflow(
            get_db(), workflow
        )
        cached = (time.monotonic(), dict(row.steps) if row else {})
        _queues[key] = cached
    return versioned_queue(cached[1].get(step) or default, version)


def publish(wakeup: Wakeup) -> bool:
    """Publish a wake-up; False (logged) if the broker could not take it."""
    try:
        _load()(wakeup, queue_for(wakeup.workflow, wakeup.step, wakeup.version))
    except ConfigurationError:
        raise
    except Exception as exc:
        log.warning(
            "could not publish the wake-up of run %s (%s); the reaper will re-publish it",
            wakeup.run_id,
            exc,
        )
        return False
    return True
