"""Prometheus metrics: what workers record as they go, and the exposition.

Recorded by the processes that do the work (multiprocess-safe under Celery prefork, see
:mod:`pipeline.metrics.multiproc`): step attempts and their duration by outcome, retries,
lease takeovers, reaper passes, LLM calls (latency, tokens, cost). Read from the database at
scrape time (:mod:`pipeline.metrics.database`): runs by workflow and status, parked runs,
overdue runs, the reaper's last pass, approvals decided. No label ever holds a run id.

Expose them with ``ravel metrics serve --port 9808``, or mount :func:`wsgi_app` on a web app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.metrics.record import (
    lease_takeover,
    llm_call,
    llm_usage,
    reaper_pass,
    step_finished,
)

if TYPE_CHECKING:
    from pipeline.metrics.expose import WsgiApp


def wsgi_app(*, database: bool = True) -> WsgiApp:
    """A WSGI app serving the exposition; mount it at ``/metrics``.

    Args:
        database: include the metrics read from the database at scrape time.
    """
    # Imported here: recording must not import the exposition (nor prometheus_client) before
    # a worker has chosen its metric folder.
    from pipeline.metrics.expose import wsgi_app as build

    return build(database=database)


__all__ = ["lease_takeover", "llm_call", "llm_usage", "reaper_pass", "step_finished", "wsgi_app"]
