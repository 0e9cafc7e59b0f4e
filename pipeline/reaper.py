"""The reaper: one pass wakes due sleepers, expires waits, and re-publishes lost wake-ups.

Beat runs it every ``RAVEL_REAPER_INTERVAL`` seconds on its own queue; passes are safe to run
concurrently. Each sweep publishes what it made runnable as soon as it has committed, and a
sweep (or a row) that fails is logged and skipped: one bad row never stops a pass. Every pass
is recorded (``ravel_reapers``) so workers and ``ravel doctor`` can tell when none runs.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline import dispatch, metrics
from pipeline.settings import get_settings
from pipeline.store import Database, decisions, get_db, health, runs, sweeps
from pipeline.store.decisions import Wakeup
from pipeline.telemetry.logs import run_fields
from pipeline.workflow import all_workflows, describe

log = logging.getLogger("ravel.reaper")
_DID = {"wake": "woke", "expiry": "expired the wait of", "re-publish": "re-published"}


@dataclass(frozen=True)
class ReapReport:
    """What one pass did."""

    woken: int
    expired: int
    republished: int
    errors: list[str] = field(default_factory=list)

    @property
    def quiet(self) -> bool:
        """Whether the pass found nothing to do."""
        return not (self.woken or self.expired or self.republished or self.errors)


def reaper_name() -> str:
    """This process, as the reaper records itself."""
    return f"{socket.gethostname()}/{os.getpid()}"


def reap() -> ReapReport:
    """Run one reaper pass."""
    db = get_db()
    settings = get_settings()
    errors: list[str] = []

    def sweep(what: str, fn: Callable[[], sweeps.Sweep]) -> int:
        try:
            found = fn()
        except Exception as exc:  # a sweep that fails must not stop the others
            log.exception("reaper: the %s sweep failed", what)
            errors.append(f"{what}: {type(exc).__name__}: {exc}")
            return 0
        errors.extend(found.errors)
        for wakeup in found.wakeups:
            dispatch.publish(wakeup)
            # One line per run it moved, findable by run id (a JSON field with the extra).
            log.info(
                "reaper: %s run %s at step %s",
                _DID[what],
                wakeup.run_id,
                wakeup.step,
                extra=run_fields(wakeup.run_id, wakeup.workflow, wakeup.step, wakeup.seq),
            )
        return len(found.wakeups)

    woken = sweep("wake", lambda: sweeps.wake_due_sleepers(db, settings.redispatch_after))
    expired = sweep("expiry", lambda: _expire_waits(db))
    republished = sweep("re-publish", lambda: sweeps.overdue_wakeups(db, settings.redispatch_after))
    report = ReapReport(woken, expired, republished, errors)
    metrics.reaper_pass(woken, expired, republished, len(errors))
    if republished:
        log.info("reaper: re-published %d overdue wake-up(s)", republished)
    try:
        health.record_reaper_pass(
            db,
            reaper_name(),
            {"woken": woken, "expired": expired, "republished": republished, "errors": len(errors)},
            "; ".join(errors)[:4000] or None,
        )
    except Exception:
        log.warning("reaper: could not record this pass", exc_info=True)
    return report


def _expire_waits(db: Database) -> sweeps.Sweep:
    """Expire each open wait whose deadline passed, one transaction per wait."""
    found = sweeps.Sweep()
    for row in sweeps.expired_waits(db):
        try:
            wakeup: Wakeup | None = decisions.expire(db, row.run_id, row.id)
        except Exception as exc:
            log.exception("reaper: could not expire wait %s of run %s; skipped", row.id, row.run_id)
            found.errors.append(f"expire {row.run_id}: {type(exc).__name__}: {exc}")
            continue
        if wakeup is not None:
            found.wakeups.append(wakeup)
    return found


def register_workflows() -> list[str]:
    """Record every workflow version loaded in this process, so ``start_run`` works anywhere."""
    db = get_db()
    default = get_settings().default_queue
    names = []
    for flow in all_workflows():
        spec = describe(flow, default)
        runs.upsert_workflow(db, spec["name"], spec["version"], spec["start_step"], spec["steps"])
        names.append(f"{flow.name} v{flow.version}")
    return names
