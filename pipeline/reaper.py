"""The reaper: one pass wakes due sleepers, expires waits, and re-publishes lost wake-ups.

Beat runs it every ``RAVEL_REAPER_INTERVAL`` seconds; passes are safe to run concurrently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline import dispatch
from pipeline.settings import get_settings
from pipeline.store import decisions, get_db, runs, sweeps
from pipeline.workflow import all_workflows, describe

log = logging.getLogger("ravel.reaper")


@dataclass(frozen=True)
class ReapReport:
    """What one pass did."""

    woken: int
    expired: int
    republished: int


def reap() -> ReapReport:
    """Run one reaper pass."""
    db = get_db()
    woken = sweeps.wake_due_sleepers(db)
    expired = []
    for row in sweeps.expired_waits(db):
        wakeup = decisions.expire(db, row.run_id, row.id)
        if wakeup is not None:
            expired.append(wakeup)
    republished = sweeps.overdue_wakeups(db, get_settings().redispatch_after)
    for wakeup in (*woken, *expired, *republished):
        dispatch.publish(wakeup)
    if republished:
        log.info("re-published %d overdue wake-up(s)", len(republished))
    return ReapReport(len(woken), len(expired), len(republished))


def register_workflows() -> list[str]:
    """Record every workflow loaded in this process, so ``start_run`` works anywhere."""
    db = get_db()
    default = get_settings().default_queue
    names = []
    for flow in all_workflows():
        spec = describe(flow, default)
        runs.upsert_workflow(db, spec["name"], spec["version"], spec["start_step"], spec["steps"])
        names.append(flow.name)
    return names
