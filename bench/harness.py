"""What every benchmark sets up: a fresh PostgreSQL database, and a worker on Redis."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from celery import Celery

from pipeline import dispatch
from pipeline.migrate import upgrade
from pipeline.settings import get_settings, reload_settings
from pipeline.store import reset_db
from pipeline.testing.cluster import Cluster
from tasks.config import celery_config
from tasks.dispatch import publisher
from tests.support.services import REDIS_HOST, REDIS_PORT, create_database, drop_database


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


@contextmanager
def worker_on_redis(concurrency: int) -> Iterator[tuple[Celery, Cluster]]:
    """One prefork worker serving ``bench.flows`` on Redis DB 14 and a private queue.

    Yields a Celery app for publishing from this process, and the worker's cluster.
    """
    with fresh_database() as url:
        folder = Path(tempfile.mkdtemp(prefix="ravel-bench-"))
        env = {
            "RAVEL_HOME": str(folder),
            "RAVEL_DATABASE_URL": url,
            "RAVEL_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/14",
            "RAVEL_DEFAULT_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
            "RAVEL_WORKFLOWS": "bench.flows",
        }
        os.environ.update(env)
        reload_settings()
        import bench.flows  # noqa: F401 - the workflows, for start_run in this process

        app = Celery("bench")
        app.conf.update(celery_config(get_settings()))
        dispatch.set_dispatcher(publisher(app))
        cluster = Cluster(env, folder)
        try:
            cluster.worker(concurrency=concurrency)
            yield app, cluster
        finally:
            cluster.stop_all()
