"""Worker and beat logs: run fields on every line of a step task, JSON with RAVEL_LOG_FORMAT.

Celery sets up its own handlers (root and task loggers) in each worker and beat process;
these signals give them Ravel's filter and format once it has. A step task's lines, Celery's
own included ("Task ... succeeded", "raised"), carry the run id, workflow and step from the
message, and the attempt once the engine has claimed the run.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from pipeline.errors import ConfigurationError
from pipeline.telemetry import logs
from tasks.reaper import REAP_TASK

# task id -> the context token to restore when the task ends (one task at a time per child).
_tokens: dict[str, Any] = {}


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _install(logger: logging.Logger | None = None, **_: Any) -> None:
    handlers = (logger or logging.getLogger()).handlers
    try:
        logs.install(handlers)
    except ConfigurationError as exc:  # say so in the log, in the format the worker has
        logs.install(handlers, "text")
        logging.getLogger("ravel.worker").error("%s; logging as text", exc)


@signals.task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, kwargs: Any = None, **_: Any) -> None:
    name = getattr(task, "name", None)
    if not task_id or not isinstance(name, str) or name == REAP_TASK or "." not in name:
        return
    found = kwargs if isinstance(kwargs, dict) else {}
    run_id = found.get("run_id")
    if not isinstance(run_id, str):  # not a step wake-up
        return
    workflow, step = name.rsplit(".", 1)
    seq = found.get("seq")
    manager = logs.run_context(
        run_id=run_id[:64],
        workflow=workflow,
        step=step,
        seq=seq if isinstance(seq, int) else None,
        task_id=task_id,
    )
    manager.__enter__()
    _tokens[task_id] = manager


@signals.task_postrun.connect
def _unbind_task(task_id: str | None = None, **_: Any) -> None:
    manager = _tokens.pop(task_id or "", None)
    if manager is not None:
        manager.__exit__(None, None, None)
