"""Metric files shared by a worker's processes (prometheus_client's multiprocess mode).

A Celery prefork worker runs steps in pool children, so each process writes its counters to
files in a folder and the exporter adds them up. Each worker (Celery node) gets its own
sub-folder of ``RAVEL_METRICS_DIR`` (``<RAVEL_HOME>/metrics``), emptied when that worker
starts: counters restart with the worker, as Prometheus expects of a process, and several
workers on one host never delete each other's files. ``ravel metrics serve`` reads every
sub-folder. A ``PROMETHEUS_MULTIPROC_DIR`` set by the operator is used as it is (and never
emptied: it may be shared with other applications).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from pipeline.settings import get_settings

log = logging.getLogger("ravel.metrics")
ENV = "PROMETHEUS_MULTIPROC_DIR"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")


def worker_folder(node: str) -> Path:
    """The metric folder of the worker named ``node`` (``celery@host``)."""
    return get_settings().metrics_folder / (_UNSAFE.sub("_", node)[:200] or "worker")


def prepare_worker(node: str) -> Path:
    """Point this process (and the pool children it forks) at the worker's metric folder.

    Called in the worker's main process before its pool starts. Unless the operator set
    ``PROMETHEUS_MULTIPROC_DIR``, it becomes the worker's own folder, emptied of the files of
    its previous run.
    """
    own = os.environ.get(ENV)
    if own:
        folder = Path(own)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = worker_folder(node)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink(missing_ok=True)
        os.environ[ENV] = str(folder)
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus_client chose in-memory values when it was imported (before the folder
        # was set): choose again, so the instruments created from now on write files.
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]
    return folder


def process_exited(pid: int) -> None:
    """Forget the live gauges of a process that ended (``mark_process_dead``)."""
    folder = os.environ.get(ENV)
    if not folder:
        return
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]
    except OSError:
        log.debug("could not remove the live gauge files of process %d", pid, exc_info=True)


def in_multiprocess_mode() -> bool:
    """Whether this process writes its metrics to files (else they live in its memory)."""
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))


def metric_files() -> list[str]:
    """Every metric file of every worker known here (and of ``PROMETHEUS_MULTIPROC_DIR``)."""
    folders: set[Path] = set()
    own = os.environ.get(ENV)
    if own and Path(own).is_dir():
        folders.add(Path(own).resolve())
    base = get_settings().metrics_folder
    if base.is_dir():
        folders.update(p.resolve() for p in base.iterdir() if p.is_dir())
    return sorted({str(f) for folder in folders for f in folder.glob("*.db")})
