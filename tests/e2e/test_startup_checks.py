"""Workers and beat refuse a database they cannot use: one line, exit code 1, no tasks taken."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from pipeline import get_run, start_run
from pipeline.testing.cluster import Cluster, free_port, wait_for
from pipeline.testing.proxy import Proxy
from tests.e2e.conftest import REDIS_DB
from tests.support.services import (
    REDIS_HOST,
    REDIS_PORT,
    create_database,
    drop_database,
    pg_available,
    redis_available,
)

pytestmark = [pytest.mark.slow, pytest.mark.services]


def _cluster(tmp_path: Path, db_url: str, broker_url: str) -> Cluster:
    (tmp_path / "logs").mkdir()
    return Cluster(
        {
            "RAVEL_HOME": str(tmp_path / "home"),
            "RAVEL_DATABASE_URL": db_url,
            "RAVEL_BROKER_URL": broker_url,
            "RAVEL_WORKFLOWS": "tests.e2e.flows",
            "RAVEL_DEFAULT_QUEUE": f"test-{uuid.uuid4().hex[:10]}",
        },
        tmp_path / "logs",
    )


@pytest.fixture
def redis_url() -> str:
    if not (redis_available() and pg_available()):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL and Redis are required in CI")
        pytest.skip("PostgreSQL or Redis is not reachable")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"


@pytest.fixture
def empty_pg() -> Iterator[str]:
    """A PostgreSQL database nobody migrated."""
    name = f"ravel_test_{uuid.uuid4().hex[:12]}"
    yield create_database(name)
    drop_database(name)


def _refused(cluster: Cluster, timeout: float, why: str) -> list[str]:
    """Worker and beat both exit 1 having said ``why`` in one CRITICAL line, no traceback.

    Returns their logs.
    """
    procs = [cluster.worker(ready=False), cluster.beat()]
    logs = []
    for proc in procs:
        wait_for(lambda: not proc.alive(), timeout, f"{proc.name} to exit")  # noqa: B023
        log = proc.log()
        logs.append(log)
        assert proc.popen.returncode == 1, log[-3000:]
        [line] = [ln for ln in log.splitlines() if "cannot start" in ln]
        assert "CRITICAL" in line and why in line, line
        assert "Traceback" not in log and "ready." not in log, log[-3000:]
    return logs


def test_not_migrated(tmp_path: Path, redis_url: str, empty_pg: str) -> None:
    cluster = _cluster(tmp_path, empty_pg, redis_url)
    try:
        _refused(cluster, 30, "is not migrated; run `ravel db upgrade`")
    finally:
        cluster.stop_all()


def test_embedded_default_not_migrated_creates_no_file(tmp_path: Path) -> None:
    db = tmp_path / "home" / "ravel.db"
    cluster = _cluster(tmp_path, f"sqlite:///{db}", "filesystem://")
    try:
        _refused(cluster, 30, "is not migrated; run `ravel db upgrade`")
    finally:
        cluster.stop_all()
    assert not db.exists()


def test_unreachable_database_is_waited_for_then_refused(tmp_path: Path, redis_url: str) -> None:
    cluster = _cluster(
        tmp_path, f"postgresql://ravel:s3cret-pw@127.0.0.1:{free_port()}/ravel", redis_url
    )
    cluster.env["RAVEL_DATABASE_WAIT"] = "2.5"
    try:
        logs = _refused(cluster, 60, "(still unreachable after 2.5 s)")
    finally:
        cluster.stop_all()
    for log in logs:
        assert "cannot reach the database at postgresql+psycopg://ravel:***@127.0.0.1" in log
        assert "retrying for up to 2.5 s (RAVEL_DATABASE_WAIT)" in log
        assert "s3cret-pw" not in log


def test_a_worker_started_before_its_database_serves_once_it_comes_up(
    pg_cluster: Cluster, pg_db: str, tmp_path: Path
) -> None:
    """Containers started together: the database answers a few seconds after the worker
    started, within ``RAVEL_DATABASE_WAIT``; the worker then starts and runs steps."""
    upstream = make_url(pg_db)
    with Proxy("127.0.0.1", upstream.port or 5432) as db_port:
        db_port.cut()  # refused, as a database still starting refuses connections
        url = upstream.set(port=db_port.port).render_as_string(hide_password=False)
        worker = pg_cluster.worker(
            {"RAVEL_DATABASE_URL": url, "RAVEL_DATABASE_WAIT": "60"}, ready=False
        )
        wait_for(lambda: "retrying for up to 60 s" in worker.log(), 60, "the worker to wait")
        db_port.heal()
        wait_for(lambda: "ready." in worker.log() or not worker.alive(), 60, "worker ready")
        assert worker.alive(), worker.log()[-3000:]
        # Its URL has no password: the ready line shows none masked either.
        [ready] = [ln for ln in worker.log().splitlines() if "ravel worker ready" in ln]
        assert f"database {make_url(url).render_as_string()}" in ready, ready
        run_id = start_run("e2e_chain", {"n": 2, "ledger": str(tmp_path / "ledger")})
        wait_for(lambda: get_run(run_id).status == "succeeded", 30, "the run to succeed")
        assert "cannot start" not in worker.log()
