"""One Celery task per workflow step.

A task is transport only: it carries a run id and the step seq it expects, and asks the
engine to run that step if the wake-up is still current. Its Celery state tells Flower what
the attempt did: SUCCESS (the step went on, or the wake-up had nothing to do), FAILURE (the
run failed for good, with the error; or the message was malformed and was dropped), RETRY
(the attempt failed and a durable retry is scheduled), PARKED (the run waits for an approval
or an event), SLEEPING (a durable sleep).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore, Retry

from pipeline.api import get_run
from pipeline.engine import StepOutcome, execute_step
from pipeline.settings import Settings
from pipeline.status import RunStatus
from pipeline.workflow import Workflow
from tasks.config import step_task_options
from tasks.wakeup import MalformedWakeup, check_wakeup

log = logging.getLogger("ravel.worker")
PARKED_EVENTS = {RunStatus.WAITING: "task-parked", RunStatus.SLEEPING: "task-sleeping"}


class StepFailed(Exception):
    """A step's attempt failed: the (redacted) error, the step's traceback as a note.

    Raised by the step task only after the engine recorded the failure: it is how Celery and
    Flower learn of it, never a reason to run anything again (the message is acked).
    """


def _failure(run_id: str, outcome: StepOutcome) -> StepFailed:
    exc = StepFailed(outcome.error or _run_error(run_id))
    if outcome.traceback:
        # Shown under the exception in Celery's log and Flower's traceback field.
        exc.add_note(f"step traceback (secrets redacted):\n{outcome.traceback.rstrip()}")
    return exc


def _run_error(run_id: str) -> str:
    """The run's error (a step that returned ``Fail(reason)`` raised nothing)."""
    try:
        error = get_run(run_id).error
    except Exception:  # monitoring only: the failure is recorded already
        error = None
    return error or f"run {run_id} failed"


def _report(task: Task, run_id: str, outcome: StepOutcome) -> None:
    """Turn the outcome of a committed attempt into the task's Celery state."""
    if outcome.status is RunStatus.FAILED:
        raise _failure(run_id, outcome)
    if outcome.retry_in is not None:
        failed = _failure(run_id, outcome)
        # Raising Retry (instead of calling task.retry) publishes nothing: the engine already
        # scheduled the retry durably. Celery acks the message and sends task-retried.
        raise Retry(
            f"retry in {outcome.retry_in:.1f}s: {failed}", exc=failed, when=outcome.retry_in
        ) from failed
    parked = PARKED_EVENTS.get(outcome.status) if outcome.status else None
    if parked is None:
        return
    # Flower shows PARKED / SLEEPING for these; Ignore acks the message without a
    # task-succeeded event overwriting that state.
    try:
        task.send_event(parked, run_id=run_id, wait_id=outcome.wait_id)
    except Exception:  # monitoring must never fail a step that committed
        log.warning("could not send the %s event of run %s", parked, run_id)
    raise Ignore()


def _make_step_task(
    celery: Celery, flow: Workflow, step: str, queue: str, options: dict[str, Any]
) -> None:
    # A malformed message is an expected refusal (FAILURE in Flower, no traceback in the log).
    # shared=False: the task belongs to this app only, not to every Celery app of the process
    # (a host project's other apps, or Ravel's own beside a host's).
    @celery.task(
        name=f"{flow.name}.{step}",
        bind=True,
        queue=queue,
        throws=(MalformedWakeup,),
        shared=False,
        **options,
    )
    def run_step(self: Task, run_id: Any = None, seq: Any = None, version: Any = None) -> None:
        # ``version`` is absent from wake-ups published before wake-ups carried it.
        try:
            run_id, seq, version = check_wakeup(run_id, seq, version)
        except MalformedWakeup as exc:
            log.warning(
                "refused a malformed message for %s (id %s): %s; dropped, nothing ran",
                self.name,
                self.request.id,
                exc,
            )
            raise
        worker = f"{self.request.hostname}/{os.getpid()}"
        outcome = execute_step(
            run_id, seq, step, worker=worker, workflow=flow.name, version=version
        )
        if not outcome.claimed:
            log.info(
                "run %s: nothing to claim for %s at seq %d (a duplicate or stale wake-up, "
                "or the run is parked, finished, unknown or of another workflow version); "
                "dropped",
                run_id,
                self.name,
                seq,
            )
        elif outcome.committed:
            _report(self, run_id, outcome)

    del run_step


def register_step_tasks(celery: Celery, flows: list[Workflow], settings: Settings) -> None:
    """Register ``<workflow>.<step>`` tasks for every step of ``flows``.

    Versions of one workflow share their tasks (the engine runs the run's own version): each
    task name is registered once, from the newest version that has the step (whose queue
    routes it). Queues come from Ravel's settings, not the app's ``task_default_queue``: on a
    host's app that is the host's queue.
    """
    options = step_task_options(settings)
    registered: set[str] = set()
    for flow in sorted(flows, key=lambda f: (f.name, -f.version)):
        for step in flow.steps:
            if f"{flow.name}.{step}" in registered:
                continue
            registered.add(f"{flow.name}.{step}")
            queue = flow.broker_queue(step, settings.default_queue)
            _make_step_task(celery, flow, step, queue, options)
