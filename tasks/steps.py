"""One Celery task per workflow step, and the reaper's beat job.

A task is transport only: it carries a run id and the step seq it expects, and asks the
engine to run that step if the wake-up is still current.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore

from pipeline.engine import execute_step
from pipeline.reaper import reap
from pipeline.settings import Settings
from pipeline.status import RunStatus
from pipeline.workflow import Workflow

log = logging.getLogger("ravel.worker")
PARKED_EVENTS = {RunStatus.WAITING: "task-parked", RunStatus.SLEEPING: "task-sleeping"}


def _make_step_task(celery: Celery, flow: Workflow, step: str, queue: str) -> None:
    @celery.task(name=f"{flow.name}.{step}", bind=True, queue=queue, ignore_result=True)
    def run_step(self: Task, run_id: str, seq: int) -> None:
        worker = f"{self.request.hostname}/{os.getpid()}"
        outcome = execute_step(run_id, int(seq), step, worker=worker)
        parked = PARKED_EVENTS.get(outcome.status) if outcome.status else None
        if parked is None:
            return
        # Flower shows PARKED / SLEEPING for these; Ignore acks the message without a
        # task-succeeded event overwriting that state.
        try:
            self.send_event(parked, run_id=run_id, wait_id=outcome.wait_id)
        except Exception:  # monitoring must never fail a step that committed
            log.warning("could not send the %s event of run %s", parked, run_id)
        raise Ignore()

    del run_step


def register_step_tasks(celery: Celery, flows: list[Workflow]) -> None:
    """Register ``<workflow>.<step>`` tasks for every step of ``flows``."""
    for flow in flows:
        for step in flow.steps:
            _make_step_task(celery, flow, step, flow.queue_of(step, celery.conf.task_default_queue))


def register_reaper(celery: Celery, settings: Settings) -> None:
    """The ``ravel.reap`` task and its beat schedule."""

    @celery.task(name="ravel.reap", ignore_result=True, acks_late=False)
    def reap_task() -> dict[str, Any]:
        report = reap()
        return {"woken": report.woken, "expired": report.expired,
                "republished": report.republished}

    del reap_task
    celery.conf.beat_schedule = {
        "ravel-reaper": {
            "task": "ravel.reap",
            "schedule": settings.reaper_interval,
            # A pass that could not run in time is useless later: drop it instead of
            # letting passes pile up behind busy workers.
            "options": {"expires": max(5.0, 3 * settings.reaper_interval),
                        "queue": settings.default_queue},
        }
    }
