"""Prometheus metrics in a Celery worker: its metric folder, set before the pool forks.

Pool children inherit ``PROMETHEUS_MULTIPROC_DIR`` from the worker's main process and write
their counters to files there; ``ravel metrics serve`` adds them up (see
:mod:`pipeline.metrics.multiproc`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import signals

from pipeline.metrics import multiproc

log = logging.getLogger("ravel.worker")


@signals.celeryd_init.connect
def _metric_folder(sender: Any = None, **_: Any) -> None:
    # The first signal of `celery worker`, in its main process, before the pool exists.
    try:
        folder = multiproc.prepare_worker(str(sender or "worker"))
    except OSError as exc:  # metrics are not worth refusing to serve for
        log.warning(
            "metrics: cannot use a metric folder (%s); this worker's metrics are not exported", exc
        )
        return
    log.info("metrics: this worker's metric files are in %s", folder)


@signals.worker_process_shutdown.connect
def _process_exits(**_: Any) -> None:
    # In the pool child that exits: its live gauges must not outlive it.
    multiproc.process_exited(os.getpid())
