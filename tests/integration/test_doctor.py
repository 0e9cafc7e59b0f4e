"""``ravel doctor`` against real databases and brokers: one line per check, exit 1 on FAIL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from pipeline import store
from pipeline.cli import cli
from pipeline.settings import get_settings, reload_settings
from pipeline.store import get_db, health
from tests.support.services import (
    REDIS_HOST,
    REDIS_PORT,
    create_database,
    drop_database,
    pg_available,
    redis_available,
)
from tests.support.workers import free_port


def doctor(*args: str, code: int) -> Result:
    result = CliRunner().invoke(cli, ["doctor", *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.output
    return result


def lines(result: Result) -> dict[str, tuple[str, str]]:
    """``{check: (STATUS, message)}``, asserting one line per check."""
    found = {}
    for line in result.stdout.splitlines():
        status, check, message = line.split(maxsplit=2)
        found[check] = (status, message)
    assert list(found) == ["database", "broker", "workers", "reaper"], result.stdout
    return found


@pytest.fixture
def broker(any_db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Redis beside PostgreSQL, the filesystem broker (its folder created) beside SQLite."""
    if any_db.startswith("sqlite"):
        get_settings().broker_folder.mkdir(parents=True)
        return "filesystem"
    if not redis_available():
        pytest.skip("Redis is not reachable")
    monkeypatch.setenv("RAVEL_BROKER_URL", f"redis://:s3cret@{REDIS_HOST}:{REDIS_PORT}/0")
    reload_settings()
    return "redis"


def _set(sql: str, **params: Any) -> None:
    engine = create_engine(get_settings().database_url)
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()


def test_healthy_deployment(broker: str) -> None:
    db = get_db()
    health.touch_worker(db, "celery@a", {"refund": [1, 2]}, starting=True)
    health.record_reaper_pass(db, "host/7", {"woken": 2, "expired": 0}, None)

    found = lines(doctor(code=0))
    assert {status for status, _ in found.values()} == {"OK"}
    assert "at revision" in found["database"][1]
    assert "celery@a (refund v1, v2" in found["workers"][1]
    assert "by host/7 (1 passes; last: woken 2, expired 0)" in found["reaper"][1]
    if broker == "redis":
        assert "redis://:***@" in found["broker"][1] and "s3cret" not in found["broker"][1]

    report = json.loads(doctor("--json", code=0).stdout)
    assert report["ok"] is True
    [worker] = report["checks"][2]["details"]["workers"]
    assert worker["name"] == "celery@a" and worker["workflows"] == {"refund": [1, 2]}
    assert report["checks"][3]["details"]["last_report"] == {"woken": 2, "expired": 0}


def test_no_worker_and_no_reaper_fail(broker: str) -> None:
    found = lines(doctor(code=1))
    assert found["workers"][0] == "FAIL" and "start `celery -A tasks worker`" in found["workers"][1]
    assert found["reaper"][0] == "FAIL"
    assert "run `celery -A tasks beat` or a worker with -B" in found["reaper"][1]


def test_stale_heartbeats_fail_and_a_failed_pass_warns(broker: str) -> None:
    db = get_db()
    health.touch_worker(db, "celery@old", {"refund": [1]})
    health.record_reaper_pass(db, "host/7", {"woken": 0}, None)
    past = db.now().replace(microsecond=0).replace(year=2020)
    _set("UPDATE ravel_workers SET last_seen_at = :t", t=past)
    _set("UPDATE ravel_reapers SET last_pass_at = :t", t=past)
    found = lines(doctor(code=1))
    assert found["workers"][0] == "FAIL" and "celery@old, was seen" in found["workers"][1]
    assert found["reaper"][0] == "FAIL" and "no reaper pass for" in found["reaper"][1]

    health.touch_worker(db, "celery@new", {"refund": [1]})
    health.record_reaper_pass(db, "host/8", {"woken": 0}, "wake: OperationalError: boom")
    found = lines(doctor(code=0))
    assert (
        found["reaper"][0] == "WARN"
        and "it failed: wake: OperationalError: boom" in found["reaper"][1]
    )


def test_database_migrated_by_a_newer_version_warns(broker: str) -> None:
    health.touch_worker(get_db(), "celery@a", {})
    health.record_reaper_pass(get_db(), "host/7", {}, None)
    _set("UPDATE ravel_alembic_version SET version_num = 'f00d'")
    found = lines(doctor(code=0))
    assert found["database"][0] == "WARN" and "newer version" in found["database"][1]
    assert "no workflows: set RAVEL_WORKFLOWS" in found["workers"][1]


@pytest.fixture
def unmigrated_pg(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if not pg_available():
        pytest.skip("PostgreSQL is not reachable")
    name = f"ravel_test_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    monkeypatch.setenv("RAVEL_HOME", str(tmp_path))
    monkeypatch.setenv("RAVEL_DATABASE_URL", url)
    monkeypatch.setenv("RAVEL_BROKER_URL", f"redis://:pw@127.0.0.1:{free_port()}/0")
    reload_settings()
    store.reset_db()
    yield url
    store.reset_db()
    drop_database(name)


def test_unmigrated_database_and_unreachable_broker_fail(unmigrated_pg: str) -> None:
    found = lines(doctor(code=1))
    assert found["database"][0] == "FAIL"
    assert "is not migrated; run `ravel db upgrade`" in found["database"][1]
    assert (
        found["broker"][0] == "FAIL"
        and "cannot reach the broker at redis://:***@" in found["broker"][1]
    )
    assert found["workers"][0] == "WARN" and "not checked" in found["workers"][1]
    report = json.loads(doctor("--json", code=1).stdout)
    assert report["ok"] is False
    assert [c["status"] for c in report["checks"]] == ["fail", "fail", "warn", "warn"]


def test_unreachable_database_fails(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAVEL_HOME", str(tmp_path))
    monkeypatch.setenv(
        "RAVEL_DATABASE_URL", f"postgresql://ravel:pw-s3cret@127.0.0.1:{free_port()}/ravel"
    )
    monkeypatch.setenv("RAVEL_BROKER_URL", "filesystem://")
    reload_settings()
    store.reset_db()
    found = lines(doctor(code=1))
    assert found["database"][0] == "FAIL"
    assert (
        "cannot reach the database at postgresql+psycopg://ravel:***@127.0.0.1"
        in found["database"][1]
    )
    assert "pw-s3cret" not in json.dumps(found)
