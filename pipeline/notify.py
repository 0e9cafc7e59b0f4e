"""Notifications when a run parks on a wait (post a Slack message, send an e-mail, ...).

Handlers run in the worker right after the park commits, best effort: a handler that fails
is logged and never undoes the park. A worker that dies between the commit and the handler
skips the notification (the run still waits, visible in ``ravel approvals list``): make
handlers idempotent and treat them as a convenience, not the record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pipeline.views import RunView

log = logging.getLogger("ravel.notify")

ParkHandler = Callable[[RunView], None]
_handlers: list[tuple[str | None, ParkHandler]] = []


def on_park(workflow: str | None = None) -> Callable[[ParkHandler], ParkHandler]:
    """Register ``fn(run)`` to be called when a run (of ``workflow``, or any) parks.

    ``run.wait`` holds the open wait: its kind, prompt, approvers, data and deadline.
    """

    def register(fn: ParkHandler) -> ParkHandler:
        _handlers.append((workflow, fn))
        return fn

    return register


def has_handlers(workflow: str) -> bool:
    """Whether any handler wants to hear about ``workflow``'s parked runs."""
    return any(w in (None, workflow) for w, _ in _handlers)


def parked(run: RunView) -> None:
    """Call the handlers for a run that just parked."""
    for workflow, fn in _handlers:
        if workflow not in (None, run.workflow):
            continue
        try:
            fn(run)
        except Exception:
            log.exception("park handler %s failed for run %s", getattr(fn, "__name__", fn), run.id)
