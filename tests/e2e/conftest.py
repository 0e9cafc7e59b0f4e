"""End-to-end fixtures: real worker and beat processes on PostgreSQL + Redis, PostgreSQL +
RabbitMQ, or on the embedded SQLite + filesystem-broker default."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from pipeline import dispatch
from pipeline.settings import get_settings
from tasks.config import celery_config
from tasks.dispatch import publisher
from tests.support.services import (
    RABBIT_HOST,
    RABBIT_PORT,
    REDIS_HOST,
    REDIS_PORT,
    create_vhost,
    delete_vhost,
    rabbitmq_available,
    redis_available,
)
from tests.support.workers import Cluster

# Fast failure detection for tests: short leases, a frequent reaper.
FAST = {
    "RAVEL_LEASE_SECONDS": "3",
    "RAVEL_REAPER_INTERVAL": "0.5",
    "RAVEL_REDISPATCH_AFTER": "2",
    "RAVEL_WORKFLOWS": "tests.e2e.flows",
}
# Each pytest-xdist process (gw0, gw1, ...) has a Redis database of its own (13, 12, ...):
# the Celery events a test listens to and the reaper's queue are per database, not per test.
_XDIST_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
REDIS_DB = os.environ.get("RAVEL_TEST_REDIS_DB") or str(13 - _XDIST_WORKER)


def _require_redis() -> None:
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} (required in CI)")
        pytest.skip(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}")


def _require_rabbitmq() -> None:
    if not rabbitmq_available():
        where = f"RabbitMQ (with rabbitmqctl) is not reachable at {RABBIT_HOST}:{RABBIT_PORT}"
        if os.environ.get("CI"):
            pytest.fail(f"{where} (required in CI)")
        pytest.skip(where)


def start_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str, broker_url: str
) -> Cluster:
    """Point this test process and its workers at one database, broker and private queue."""
    import tests.e2e.flows  # noqa: F401 - the test process starts runs of these workflows

    env = {
        **FAST,
        "RAVEL_HOME": str(tmp_path / "home"),
        "RAVEL_DATABASE_URL": db_url,
        "RAVEL_BROKER_URL": broker_url,
        "RAVEL_DEFAULT_QUEUE": f"test-{uuid.uuid4().hex[:10]}",
        "RAVEL_FAULTS_ONCE_DIR": str(tmp_path / "faults"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from pipeline.settings import reload_settings

    reload_settings()
    app = Celery("ravel-test-publisher")
    app.conf.update(celery_config(get_settings()))
    dispatch.set_dispatcher(publisher(app))
    (tmp_path / "logs").mkdir(exist_ok=True)
    return Cluster(env, tmp_path / "logs")


@pytest.fixture
def pg_cluster(pg_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """Workers on PostgreSQL and the shared Redis (own DB number, own queue)."""
    _require_redis()
    cluster = start_cluster(
        tmp_path, monkeypatch, pg_db, f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    )
    yield cluster
    cluster.stop_all()
    dispatch.set_dispatcher(None)


@pytest.fixture
def amqp_cluster(pg_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """Workers on PostgreSQL and the shared RabbitMQ, in a virtual host of their own (its
    queues, exchanges and messages go with it when the test ends)."""
    _require_rabbitmq()
    vhost = f"ravel-test-{uuid.uuid4().hex[:10]}"
    cluster = start_cluster(tmp_path, monkeypatch, pg_db, create_vhost(vhost))
    yield cluster
    cluster.stop_all()
    dispatch.set_dispatcher(None)
    delete_vhost(vhost)


@pytest.fixture
def embedded_cluster(
    sqlite_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    """Workers on the embedded default: a SQLite file and the filesystem broker."""
    cluster = start_cluster(tmp_path, monkeypatch, sqlite_db, "filesystem://")
    yield cluster
    cluster.stop_all()
    dispatch.set_dispatcher(None)


@pytest.fixture(params=["postgresql", "embedded"])
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """The test runs on PostgreSQL + Redis and on the embedded SQLite + filesystem default."""
    name = "pg_cluster" if request.param == "postgresql" else "embedded_cluster"
    found: Cluster = request.getfixturevalue(name)
    return found


# Broker parameters and the fixture each one uses.
_CLUSTERS = {"redis": "pg_cluster", "amqp": "amqp_cluster", "embedded": "embedded_cluster"}


@pytest.fixture(params=["redis", "amqp"])
def broker_cluster(request: pytest.FixtureRequest) -> Cluster:
    """The test runs on PostgreSQL with each broker: Redis and RabbitMQ."""
    found: Cluster = request.getfixturevalue(_CLUSTERS[request.param])
    return found


@pytest.fixture(params=["redis", "amqp", "embedded"])
def every_cluster(request: pytest.FixtureRequest) -> Cluster:
    """The test runs on PostgreSQL + Redis, PostgreSQL + RabbitMQ and the embedded default."""
    found: Cluster = request.getfixturevalue(_CLUSTERS[request.param])
    return found
