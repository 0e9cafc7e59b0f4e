"""DBOS Transact side by side (the ``bench`` extra): the same trivial steps, durably.

DBOS runs a workflow's steps in the calling process (no broker hop), checkpointing each step
in its system database on the same PostgreSQL server. Several runs at once are run by a pool
of 2 threads, the analogue of a worker with ``-c 2`` (DBOS's queues would add their polling
interval; a thread pool adds nothing).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from bench.procstat import backend_pids
from tests.support.services import PG_ADMIN_URL, create_database, drop_database


def version() -> str | None:
    """DBOS's version, or None when the ``bench`` extra is not installed."""
    try:
        return importlib.metadata.version("dbos")
    except importlib.metadata.PackageNotFoundError:
        return None


class DbosSystem:
    """A launched DBOS on its own fresh system database."""

    def __init__(self, database: str, loop: Any) -> None:
        """Run ``loop(n)`` (a DBOS workflow of ``n`` steps) against ``database``."""
        self.database = database
        self._loop = loop

    def one_run(self, steps: int) -> float:
        """Seconds per step of one workflow of ``steps`` steps."""
        start = time.perf_counter()
        self._loop(steps)
        return (time.perf_counter() - start) / steps

    def runs(self, count: int, steps: int, concurrency: int = 2) -> float:
        """Seconds until ``count`` workflows of ``steps`` steps ran on ``concurrency`` threads."""
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            for done in [pool.submit(self._loop, steps) for _ in range(count)]:
                done.result()
        return time.perf_counter() - start

    def pids(self) -> list[int]:
        """This process (where DBOS runs the steps) and its database backends."""
        return [os.getpid(), *backend_pids(PG_ADMIN_URL, self.database)]


@contextmanager
def dbos_system() -> Iterator[DbosSystem]:
    """Launch DBOS with its defaults on a fresh database; destroy it afterwards."""
    from dbos import DBOS

    @DBOS.step()
    def hop(i: int) -> int:
        return i + 1

    @DBOS.workflow()
    def bench_loop(n: int) -> int:
        x = 0
        for _ in range(n):
            x = hop(x)
        return x

    name = f"dbos_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(name).replace("postgresql+psycopg://", "postgresql://")
    DBOS(config={"name": "ravel-bench", "system_database_url": url, "log_level": "WARNING"})
    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS.launch()
    try:
        yield DbosSystem(name, bench_loop)
    finally:
        DBOS.destroy(destroy_registry=True)
        drop_database(name)


@contextmanager
def maybe_dbos() -> Iterator[DbosSystem | None]:
    """:func:`dbos_system` when DBOS is installed, else None."""
    if version() is None:
        yield None
        return
    with dbos_system() as system:
        yield system
