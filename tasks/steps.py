"""One Celery task per workflow step.

A task is transport only: it carries a run id and the step seq it expects, and asks the
engine to run that step if the wake-up is still current. Its Celery state tells Flower what
the attempt did: SUCCESS (the step went on, or the wake-up had nothing to do), FAILURE (the
run failed for good, with the error), RETRY (the attempt failed and a durable retry is
scheduled), PARKED (the run waits for an approval or an event), SLEEPING (a durable sleep).
"""

from __future__ import annotations

import logging
import os

from celery import Celery, Task
from celery.exceptions import Ignore, Retry

from pipeline.api import get_run
from pipeline.engine import StepOutcome, execute_step
from pipeline.status import RunStatus
from pipeline.workflow import Workflow

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
        raise Retry(f"retry in {outcome.retry_in:.1f}s: {failed}", exc=failed,
                    when=outcome.retry_in) from failed
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


def _make_step_task(celery: Celery, flow: Workflow, step: str, queue: str) -> None:
    @celery.task(name=f"{flow.name}.{step}", bind=True, queue=queue, ignore_result=True)
    def run_step(self: Task, run_id: str, seq: int, version: int | None = None) -> None:
        # ``version`` is absent from wake-ups published before wake-ups carried it.
        worker = f"{self.request.hostname}/{os.getpid()}"
        outcome = execute_step(run_id, int(seq), step, worker=worker, workflow=flow.name,
                               version=None if version is None else int(version))
        if outcome.committed:
            _report(self, run_id, outcome)

    del run_step


def register_step_tasks(celery: Celery, flows: list[Workflow]) -> None:
    """Register ``<workflow>.<step>`` tasks for every step of ``flows``.

    Versions of one workflow share their tasks (the engine runs the run's own version); the
    newest version's queue routes a step both have.
    """
    for flow in flows:
        for step in flow.steps:
            _make_step_task(celery, flow, step, flow.queue_of(step, celery.conf.task_default_queue))
