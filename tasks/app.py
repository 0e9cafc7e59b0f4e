"""Builds the Celery app from the settings, loads the workflows and wires the signals."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from typing import Any

from celery import Celery, signals

from pipeline import dispatch, store
from pipeline.errors import ConfigurationError
from pipeline.reaper import register_workflows
from pipeline.redact import redact_text
from pipeline.settings import get_settings
from pipeline.workflow import all_workflows
from tasks import dispatch as celery_dispatch
from tasks import logs as _logs  # noqa: F401 - connects its signals
from tasks import metrics as _metrics  # noqa: F401 - connects its signals
from tasks import startup
from tasks.config import celery_config, task_queue
from tasks.heartbeat import Heartbeat
from tasks.reaper import quiet_reaper_logs, register_reaper
from tasks.steps import register_step_tasks

log = logging.getLogger("ravel.worker")


def _load_workflows(modules: tuple[str, ...]) -> None:
    # Workflow modules are importable from the working directory, as with `celery -A`.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(
                f"RAVEL_WORKFLOWS names {name!r}, which cannot be imported: {exc}"
            ) from exc
        except Exception as exc:
            # A module that raises as it loads (a missing setting, a bug): refuse to start
            # rather than serve the other modules' workflows without it; say where, in a line.
            raise ConfigurationError(
                f"RAVEL_WORKFLOWS names {name!r}, which raised {type(exc).__name__} on import: "
                f"{redact_text(str(exc), 500)}{_raised_at(name, exc)}"
            ) from exc


def _raised_at(module: str, exc: Exception) -> str:
    """Where in ``module`` the import failed (the line of the module's own file)."""
    if isinstance(exc, SyntaxError):  # its message names the file and line already
        return ""
    frames = traceback.extract_tb(exc.__traceback__)
    own = module.replace(".", os.sep)
    in_module = [f for f in frames if f.filename.endswith((f"{own}.py", f"{own}/__init__.py"))]
    frame = (in_module or frames)[-1]
    return f" ({frame.filename}, line {frame.lineno})"


def _mask(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def create_app() -> Celery:
    """The Celery app serving every workflow of ``RAVEL_WORKFLOWS``."""
    settings = get_settings()
    _load_workflows(settings.workflows)
    celery = Celery("ravel")
    celery.conf.update(celery_config(settings))
    # The default queue stays consumed for tasks sent there by hand; step wake-ups go to
    # per-version queues, so a worker only receives runs of the versions it serves.
    queues = {settings.default_queue, settings.reaper_queue}
    for flow in all_workflows():
        queues.update(flow.broker_queue(s, settings.default_queue) for s in flow.steps)
    # Without explicit queues a worker would consume only the default queue.
    celery.conf.task_queues = [task_queue(q, settings) for q in sorted(queues)]
    register_step_tasks(celery, all_workflows())
    register_reaper(celery, settings)
    quiet_reaper_logs()
    dispatch.set_dispatcher(celery_dispatch.publisher(celery))
    return celery


def _create_or_refuse() -> Celery:
    try:
        return create_app()
    except ConfigurationError as exc:
        if "celery.bin.celery" not in sys.modules:
            raise  # an app process that publishes wake-ups gets the exception itself
        # `celery -A tasks ...` would bury this under "Unable to load celery application"
        # and a traceback: a bad setting gets one line and exit code 1, as startup checks do.
        sys.exit(f"ravel cannot start: {exc}")


app = _create_or_refuse()
_heartbeat: Heartbeat | None = None


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # Pooled connections must not cross fork(); no I/O here (Celery kills a child whose
    # init takes over 4 s).
    store.after_fork()


@signals.celeryd_after_setup.connect
def _before_consuming(instance: Any, **_: Any) -> None:
    # Logging is set up, the pool and the consumer are not started yet: the last moment to
    # refuse to serve, and to add the reaper queue to a `-Q` list that left it out.
    startup.check_database("worker")
    settings = get_settings()
    queues = instance.app.amqp.queues
    # The declaration, not the name: a name would re-add it as a plain (classic) queue.
    queues.select_add(task_queue(settings.reaper_queue, settings))
    _select_versions_of(queues, settings)


def _select_versions_of(queues: Any, settings: Any) -> None:
    """`-Q llm` names the queue a step is configured with; its wake-ups travel in one queue
    per workflow version (``llm.v1``, ``llm.v2``): consume those of the versions served."""
    if queues._consume_from is None:  # no -Q: every queue of task_queues is consumed
        return
    selected = set(queues._consume_from)
    for flow in all_workflows():
        for step in flow.steps:
            if flow.queue_of(step, settings.default_queue) in selected:
                queues.select_add(task_queue(flow.broker_queue(step, settings.default_queue),
                                             settings))


@signals.beat_init.connect
def _beat_starting(**_: Any) -> None:
    startup.check_database("beat")


@signals.worker_ready.connect
def _on_ready(sender: Any, **_: Any) -> None:
    global _heartbeat
    settings = get_settings()
    broker = os.environ.get("CELERY_BROKER_URL") or settings.broker_url
    # CELERY_BROKER_URL silently wins over RAVEL_BROKER_URL inside Celery: say which is used.
    log.info("ravel worker ready: broker %s, database %s", _mask(broker),
             _mask(settings.database_url))
    try:
        names = register_workflows()
        log.info("serving workflows: %s", ", ".join(names) or "none (set RAVEL_WORKFLOWS)")
    except Exception as exc:
        log.error("could not record the workflows in the database (%s); start_run from "
                  "processes without the workflow code will not find them yet",
                  " ".join(str(exc).split())[:300])
    _heartbeat = Heartbeat(sender.hostname)
    _heartbeat.beat(starting=True)
    _heartbeat.start()


@signals.worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
