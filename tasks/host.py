"""Ravel on a Celery app: its own (``celery -A tasks``) or the one a project already has.

One call makes a project's Celery app serve Ravel's steps beside the project's own tasks, so
one ``celery -A proj worker`` runs both::

    # proj/celery.py
    import os

    import tasks  # Ravel's Celery package
    from celery import Celery

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
    app = Celery("proj")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.autodiscover_tasks()
    tasks.install(app)

At once, :func:`install` checks the app's settings against the ones Ravel's design needs
(a :class:`ConfigurationError` names each conflict and what to set), gives the app Ravel's
consumer if it has Celery's, connects the worker and beat signals, and makes ``start_run`` in
this process publish through the app. When a worker or beat of the app starts (Celery's
``import_modules``, after Django is set up), it imports ``RAVEL_WORKFLOWS`` and registers a
task per step (with Ravel's per-task settings, on Ravel's queues), the reaper task and its
beat entry. A web process that only starts runs never imports the workflows.
"""

from __future__ import annotations

import logging
import sys
import weakref
from typing import Any, NoReturn

from celery import Celery
from celery import signals as celery_signals
from kombu.connection import Connection

from pipeline import dispatch
from pipeline.errors import ConfigurationError
from pipeline.redact import mask_url
from pipeline.settings import Settings, get_settings
from pipeline.workflow import all_workflows
from tasks import dispatch as celery_dispatch
from tasks import signals
from tasks.config import broker_url, redelivery_after, task_queue
from tasks.loading import load_workflows
from tasks.reaper import quiet_reaper_logs, register_reaper
from tasks.steps import register_step_tasks

log = logging.getLogger("ravel.worker")

#: Content types that are JSON (Celery accepts either spelling in ``accept_content``).
_JSON = frozenset({"json", "application/json"})
_CELERY_CONSUMER = "celery.worker.consumer:Consumer"
_RAVEL_CONSUMER = "tasks.consumer:Consumer"
#: kombu's Redis visibility timeout when the app sets none.
_REDIS_VISIBILITY_DEFAULT = 3600

_installed: weakref.WeakSet[Celery] = weakref.WeakSet()


def _named(celery: Celery, key: str, value: str) -> str:
    """How to set ``key`` on this app: in Django's settings when it reads them by namespace."""
    namespace = getattr(celery, "namespace", None)
    if namespace:
        return f"{namespace}_{key.upper()} = {value} in your settings"
    return f"app.conf.{key} = {value}"


def _same_broker(a: str | None, b: str) -> bool:
    try:  # kombu fills in default ports and hosts: compare what each connects to
        return bool(Connection(a).as_uri(True) == Connection(b).as_uri(True))
    except Exception:  # an unknown transport: compare the text
        return (a or "").rstrip("/") == b.rstrip("/")


def _broker_conflict(celery: Celery, settings: Settings) -> str | None:
    own = celery.conf.broker_url
    if _same_broker(own, broker_url(settings)):
        return None
    shown = mask_url(str(own)) if own else "Celery's default (amqp://localhost)"
    return (
        f"this app's broker is {shown} but RAVEL_BROKER_URL is "
        f"{mask_url(settings.broker_url)}: the processes that publish through "
        "RAVEL_BROKER_URL (ravel serve, the CLI) would send wake-ups where this worker "
        "does not listen; set RAVEL_BROKER_URL to the app's broker URL in every process"
    )


def _visibility_conflict(celery: Celery, settings: Settings) -> str | None:
    if not str(celery.conf.broker_url or "").startswith(("redis", "rediss")):
        return None
    options = celery.conf.broker_transport_options or {}
    timeout = options.get("visibility_timeout", _REDIS_VISIBILITY_DEFAULT)
    needed = redelivery_after(settings)
    if timeout >= needed:
        return None
    return (
        f"the Redis visibility_timeout is {timeout} s, less than the {needed} s a step "
        "may hold its wake-up (4 x (RAVEL_STEP_TIME_LIMIT + 60)): Redis would hand a "
        "running step to a second worker; set "
        + _named(celery, "broker_transport_options", f'{{"visibility_timeout": {needed}}}')
    )


def conflicts(celery: Celery, settings: Settings | None = None) -> list[str]:
    """What in ``celery``'s settings conflicts with what Ravel's tasks need (empty: nothing).

    Ravel's per-task settings (late acks, reject on a lost worker, JSON, time limits) are set
    on its tasks; the ones Celery only takes for the whole worker are checked here.
    """
    settings = settings or get_settings()
    conf = celery.conf
    found = []
    accepted = {str(c) for c in (conf.accept_content or ())}
    if accepted - _JSON or not accepted:
        others = ", ".join(sorted(accepted - _JSON)) or "nothing"
        found.append(
            f"accept_content allows {others}: a worker must accept JSON only, or "
            "anyone who can write to the broker runs code in it (pickle); set "
            + _named(celery, "accept_content", '["json"]')
        )
    if conf.worker_prefetch_multiplier != 1:
        found.append(
            f"worker_prefetch_multiplier is {conf.worker_prefetch_multiplier}: "
            "wake-ups reserved behind a running step wait for it, and a killed "
            "worker's come back only after the visibility timeout; set "
            + _named(celery, "worker_prefetch_multiplier", "1")
        )
    for check in (_broker_conflict, _visibility_conflict):
        problem = check(celery, settings)
        if problem:
            found.append(problem)
    return found


def check(celery: Celery, settings: Settings | None = None) -> None:
    """Raise :class:`ConfigurationError` naming every conflict of :func:`conflicts`."""
    found = conflicts(celery, settings)
    if found:
        numbered = "; ".join(f"({i}) {p}" for i, p in enumerate(found, 1))
        raise ConfigurationError(
            f"the Celery app {celery.main!r} cannot run Ravel's steps: {numbered}"
        )


def refuse_or_raise(exc: ConfigurationError) -> NoReturn:
    """In a ``celery`` command, exit with ``exc`` in one line; elsewhere raise it.

    ``celery -A ...`` would bury the error under "Unable to load celery application" and a
    traceback; a bad setting gets one line and exit code 1, as start-up checks do.
    """
    if "celery.bin.celery" in sys.modules:
        sys.exit(f"ravel cannot start: {exc}")
    raise exc


def serve(celery: Celery, settings: Settings) -> None:
    """Import the workflows and register their step tasks, queues and the reaper."""
    load_workflows(settings.workflows)
    flows = all_workflows()
    # The default queue stays consumed for tasks sent there by hand; step wake-ups go to
    # per-version queues, so a worker only receives runs of the versions it serves.
    names = {settings.default_queue, settings.reaper_queue}
    names.update(f.broker_queue(s, settings.default_queue) for f in flows for s in f.steps)
    queues = celery.amqp.queues
    for name in sorted(names):
        # select_add: consumed without -Q, beside the app's own queues (a -Q list chooses
        # among them; tasks.signals adds the reaper's and the versions of named queues).
        queues.select_add(task_queue(name, settings))
    register_step_tasks(celery, flows, settings)
    register_reaper(celery, settings)
    quiet_reaper_logs()


def _serve_on_start(sender: Any = None, **_: Any) -> None:
    # Celery's signals log and swallow an Exception: a bad setting must stop the worker.
    try:
        settings = get_settings()
        check(sender, settings)  # settings changed after install() are seen here
        serve(sender, settings)
    except ConfigurationError as exc:
        refuse_or_raise(exc)


def install(celery: Celery, *, load_now: bool = False) -> Celery:
    """Make ``celery`` serve Ravel's steps and reaper beside its own tasks.

    Call it once the app is configured (after ``config_from_object``), in the module
    ``celery -A`` names: its workers and beat then run Ravel's steps and reaper, and
    ``start_run`` in any process that imported it publishes through it. Give every process
    the same ``RAVEL_DATABASE_URL``, ``RAVEL_WORKFLOWS`` and a ``RAVEL_BROKER_URL`` equal to
    the app's broker.

    Args:
        celery: the project's Celery app.
        load_now: import the workflows and register their tasks now, rather than when a
            worker or beat starts (Ravel's own app does; a Django project must not, since
            workflow modules may use models before Django is set up).

    Returns:
        ``celery``, for ``app = tasks.install(Celery(...))``.

    Raises:
        ConfigurationError: the app's settings conflict with Ravel's (each conflict named,
            with what to set), or (``load_now``) a workflow module cannot be imported. In a
            ``celery`` command it exits with the message in one line instead.
    """
    if celery in _installed:
        return celery
    try:
        settings = get_settings()
        check(celery, settings)
    except ConfigurationError as exc:
        refuse_or_raise(exc)
    if celery.conf.worker_consumer == _CELERY_CONSUMER:
        # Celery's consumer stops the whole worker on some malformed messages; Ravel's drops
        # such a message in a log line (the app's own tasks gain that too).
        celery.conf.worker_consumer = _RAVEL_CONSUMER
    elif celery.conf.worker_consumer != _RAVEL_CONSUMER:
        log.warning(
            "the Celery app %r has its own worker_consumer (%s): a malformed message "
            "may stop its workers (Ravel's %s drops it)",
            celery.main,
            celery.conf.worker_consumer,
            _RAVEL_CONSUMER,
        )
    signals.connect()
    signals.watch(celery)
    dispatch.set_dispatcher(celery_dispatch.publisher(celery))
    if load_now:
        try:
            serve(celery, settings)
        except ConfigurationError as exc:
            refuse_or_raise(exc)
    else:
        celery_signals.import_modules.connect(_serve_on_start, sender=celery, weak=False)
    _installed.add(celery)
    return celery


__all__ = ["check", "conflicts", "install", "refuse_or_raise", "serve"]
