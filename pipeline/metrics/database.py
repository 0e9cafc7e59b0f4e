"""Metrics read from the database at scrape time: runs by status, parked runs, overdue runs,
the reaper's last pass, approvals decided.

A custom collector: each scrape asks the database (see :mod:`pipeline.store.stats`), so the
numbers are exact whichever process changed the runs. If the database cannot be read, the
scrape still answers, with ``ravel_database_up 0`` and without these metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.status import RunStatus
from pipeline.store import get_db, stats

log = logging.getLogger("ravel.metrics")


class DatabaseCollector(Collector):
    """Yields the database-derived metric families on each scrape."""

    def collect(self) -> Iterator[Metric]:
        """Read the database and yield the metric families."""
        up = GaugeMetricFamily(
            "ravel_database_up", "1 if the run store could be read for this scrape, else 0."
        )
        try:
            snap = stats.snapshot(get_db())
        except Exception as exc:
            log.warning("metrics: could not read the run store: %s", " ".join(str(exc).split()))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _runs(snap)
        yield from _parked(snap)
        yield from _overdue(snap)
        yield from _reaper(snap)
        yield from _approvals(snap)


def _runs(snap: stats.Snapshot) -> Iterator[Metric]:
    runs = GaugeMetricFamily(
        "ravel_runs", "Runs by workflow and status, as stored now.", labels=["workflow", "status"]
    )
    counts = {(w, s): n for w, s, n in snap.runs}
    # Every status of every workflow seen, zeros included, so a series never vanishes.
    for workflow in sorted({w for w, _ in counts}):
        for status in RunStatus:
            runs.add_metric([workflow, status.value], counts.get((workflow, status.value), 0))
    yield runs


def _parked(snap: stats.Snapshot) -> Iterator[Metric]:
    parked = GaugeMetricFamily(
        "ravel_runs_parked", "Runs parked on an open wait, by kind.", labels=["workflow", "kind"]
    )
    oldest = GaugeMetricFamily(
        "ravel_runs_parked_oldest_seconds",
        "How long the oldest open wait of the workflow has been open.",
        labels=["workflow"],
    )
    ages: dict[str, float] = {}
    for workflow, kind, count, since in snap.parked:
        parked.add_metric([workflow, kind], count)
        age = max(0.0, (snap.now - since).total_seconds())
        ages[workflow] = max(age, ages.get(workflow, 0.0))
    for workflow, age in sorted(ages.items()):
        oldest.add_metric([workflow], age)
    yield parked
    yield oldest


def _overdue(snap: stats.Snapshot) -> Iterator[Metric]:
    count = GaugeMetricFamily(
        "ravel_runs_overdue",
        "Runs past a due time: pending (runnable, not yet claimed), wake (a sleep or retry "
        "backoff ended), lease (a running lease expired), wait_expiry (an open wait's deadline).",
        labels=["due"],
    )
    oldest = GaugeMetricFamily(
        "ravel_runs_overdue_seconds",
        "How far past its due time the most overdue run is (0: none).",
        labels=["due"],
    )
    for due, found in snap.overdue.items():
        count.add_metric([due], found.count)
        late = (snap.now - found.oldest_due).total_seconds() if found.oldest_due else 0.0
        oldest.add_metric([due], max(0.0, late))
    yield count
    yield oldest


def _reaper(snap: stats.Snapshot) -> Iterator[Metric]:
    if snap.reaper_last_pass is None:
        return  # no reaper ever ran: absent, which the alert rule checks for
    age = GaugeMetricFamily(
        "ravel_reaper_last_pass_age_seconds", "Seconds since the latest pass of any reaper."
    )
    age.add_metric([], max(0.0, (snap.now - snap.reaper_last_pass).total_seconds()))
    yield age


def _approvals(snap: stats.Snapshot) -> Iterator[Metric]:
    decided = CounterMetricFamily(
        "ravel_approvals_decided",
        "Approval waits decided, by decision (approved, rejected, expired, cancelled); "
        "counted from the stored waits.",
        labels=["workflow", "decision"],
    )
    for workflow, decision, count in snap.approvals:
        decided.add_metric([workflow, decision], count)
    yield decided
