"""What every benchmark sets up: a fresh PostgreSQL database, and workers on Redis.

:func:`rig` yields a :class:`Rig`: the database, a Celery app publishing from this process,
the worker processes (prefork, on a private queue of Redis DB 14) and the helpers that drive
Ravel and the bare Celery baseline through the same worker.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from sqlalchemy import Engine, create_engine, text

from bench.procstat import backend_pids, session_pids
from pipeline import dispatch, start_run
from pipeline.migrate import upgrade
from pipeline.settings import get_settings, reload_settings
from pipeline.store import reset_db
from pipeline.testing.cluster import Cluster, Proc
from tasks.config import celery_config
from tasks.dispatch import publisher
from tests.support.services import (
    PG_ADMIN_URL,
    REDIS_HOST,
    REDIS_PORT,
    create_database,
    drop_database,
)

BROKER_DB = 14


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, migrated database this process uses; dropped afterwards. Yields its URL."""
    name = f"ravel_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    os.environ["RAVEL_DATABASE_URL"] = url
    reload_settings()
    upgrade(url)
    try:
        yield url
    finally:
        reset_db()
        drop_database(name)


def stored_bytes(url: str) -> tuple[int, int]:
    """What the tables of a database hold: on disk (with indexes, TOAST and row versions not
    yet vacuumed) and as live rows (``pg_column_size``, compressed values as stored)."""
    engine = create_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT c.relname FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.relkind = 'r' AND n.nspname = 'public'"
                    )
                )
            ]
            disk = rows = 0
            for table in tables:
                disk += int(
                    conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": table}).scalar()
                    or 0
                )
                rows += int(
                    conn.execute(
                        text(f'SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM "{table}" t')
                    ).scalar()
                    or 0
                )
            return disk, rows
    finally:
        engine.dispose()


@dataclass
class Rig:
    """One benchmark's database, broker queue, publishing app and workers."""

    url: str
    env: dict[str, str]
    app: Celery
    cluster: Cluster
    broker: redis.Redis
    workers: list[Proc] = field(default_factory=list)
    _engine: Engine | None = None

    @property
    def database(self) -> str:
        """The database's name."""
        return self.url.rsplit("/", 1)[-1]

    @property
    def queue(self) -> str:
        """The private queue the workers consume (steps and bare hops alike)."""
        return self.env["RAVEL_DEFAULT_QUEUE"]

    def worker(
        self, concurrency: int, extra_env: dict[str, str] | None = None, beat: bool = False
    ) -> Proc:
        """Start one more worker process and wait until it is ready."""
        proc = self.cluster.worker(extra_env, concurrency=concurrency, beat=beat)
        self.workers.append(proc)
        return proc

    def worker_pids(self) -> list[int]:
        """Every process of the live workers (main process and pool children)."""
        return [p for w in self.workers if w.alive() for p in session_pids(w.pid)]

    def pg_pids(self) -> list[int]:
        """The PostgreSQL backends connected to this benchmark's database."""
        return backend_pids(PG_ADMIN_URL, self.database)

    def sql(self, query: str, **params: Any) -> Any:
        """One scalar read through a connection of the benchmark's own (not Ravel's pool)."""
        if self._engine is None:
            self._engine = create_engine(self.url, pool_size=1)
        with self._engine.connect() as conn:
            return conn.execute(text(query), params).scalar()

    def db_bytes(self) -> tuple[int, int]:
        """:func:`stored_bytes` of the benchmark's database."""
        return stored_bytes(self.url)

    def wait_runs(
        self, workflow: str, count: int, status: str, timeout: float = 600, every: float = 0.05
    ) -> None:
        """Poll (rarely: the probe must not compete with the worker) until ``count`` runs of
        ``workflow`` have ``status``."""
        deadline = time.monotonic() + timeout
        while (
            self.sql(
                "SELECT count(*) FROM ravel_runs WHERE workflow = :w AND status = :s",
                w=workflow,
                s=status,
            )
            < count
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} runs of {workflow} not {status} in {timeout} s")
            time.sleep(every)

    def ravel_loops(self, runs: int, steps: int) -> float:
        """Start ``runs`` runs of ``steps`` trivial steps; seconds until all succeeded."""
        tag = f"loop-{uuid.uuid4().hex[:6]}"
        start = time.perf_counter()
        for _ in range(runs):
            start_run("bench_loop", {"left": steps, "tag": tag})
        self.wait_runs_tagged(tag, runs)
        return time.perf_counter() - start

    def wait_runs_tagged(self, tag: str, count: int, timeout: float = 900) -> None:
        """Until ``count`` runs whose input carries ``tag`` succeeded."""
        deadline = time.monotonic() + timeout
        while (
            self.sql(
                "SELECT count(*) FROM ravel_runs WHERE status = 'succeeded' "
                "AND input ->> 'tag' = :t",
                t=tag,
            )
            < count
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} runs tagged {tag} did not finish in {timeout} s")
            time.sleep(0.02)

    def bare_chains(self, chains: int, hops: int) -> float:
        """Send ``chains`` bare Celery chains of ``hops`` hops; seconds until all ended."""
        key = f"bench:{uuid.uuid4().hex}"
        start = time.perf_counter()
        for _ in range(chains):
            self.app.send_task("bench.hop", args=(hops, key), queue=self.queue)
        deadline, ended = time.monotonic() + 900, 0
        while ended < chains:
            # Short waits: redis-py's default socket timeout (5 s) would cut a longer BLPOP.
            if self.broker.blpop([key], timeout=1) is not None:
                ended += 1
            elif time.monotonic() > deadline:
                raise TimeoutError(f"bare chains did not end in 900 s ({key})")
        elapsed = time.perf_counter() - start
        self.broker.delete(key)
        return elapsed

    def purge(self) -> None:
        """Delete the benchmark's queues (the default one, per-version step queues, the
        reaper's) and kombu's bindings of them from the broker."""
        for pattern in (f"{self.queue}*", f"_kombu.binding*.{self.queue}*"):
            for key in list(self.broker.scan_iter(match=pattern, count=1000)):
                self.broker.delete(key)

    def close(self) -> None:
        """Stop the workers; drop the benchmark's own engine."""
        self.cluster.stop_all()
        if self._engine is not None:
            self._engine.dispose()


@contextmanager
def rig(
    concurrency: int = 1,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
    beat: bool = False,
) -> Iterator[Rig]:
    """A fresh database and ``workers`` prefork workers serving ``bench.flows`` on Redis.

    ``workers=0`` starts none (for benchmarks of what a client does). ``extra_env`` holds
    RAVEL_* settings for this process and the workers alike.
    """
    with fresh_database() as url:
        folder = Path(tempfile.mkdtemp(prefix="ravel-bench-"))
        env = {
            "RAVEL_HOME": str(folder),
            "RAVEL_DATABASE_URL": url,
            "RAVEL_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}",
            "RAVEL_DEFAULT_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
            "RAVEL_WORKFLOWS": "bench.flows",
            **(extra_env or {}),
        }
        os.environ.update(env)
        reload_settings()
        import bench.flows  # noqa: F401 - the workflows, for start_run in this process

        app = Celery("bench")
        app.conf.update(celery_config(get_settings()))
        dispatch.set_dispatcher(publisher(app))
        broker = redis.Redis.from_url(get_settings().broker_url)
        the_rig = Rig(url, env, app, Cluster(env, folder), broker)
        try:
            for _ in range(workers):
                the_rig.worker(concurrency, beat=beat and not the_rig.workers)
            yield the_rig
        finally:
            the_rig.close()
            the_rig.purge()
            dispatch.set_dispatcher(None)
            for name in env:
                os.environ.pop(name, None)
            reload_settings()


@contextmanager
def worker_on_redis(concurrency: int) -> Iterator[tuple[Celery, Cluster]]:
    """One worker serving ``bench.flows`` (for the older single-purpose scripts)."""
    with rig(concurrency) as r:
        yield r.app, r.cluster
