"""The ``ravel`` CLI against a real PostgreSQL database."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect, text

from pipeline import (
    Done,
    RetryPolicy,
    WaitForApproval,
    Workflow,
    get_run,
    run_history,
    start_run,
    store,
)
from pipeline.cli import cli
from pipeline.settings import reload_settings
from tests.support.services import PG_ADMIN_URL, create_database, drop_database, pg_available

pytestmark = pytest.mark.services

flow = Workflow("cli_pg_approval", version=1)


@flow.step(start=True)
def ask(ctx: Any) -> Any:
    return WaitForApproval(
        prompt="Buy 3 laptops?", approvers=["finance"], timeout=timedelta(hours=1), then="buy"
    )


@flow.step
def buy(ctx: Any) -> Any:
    return Done({"decision": ctx.wait_result.decision, "by": ctx.wait_result.actor})


flaky = Workflow("cli_pg_flaky", version=1, retry=RetryPolicy(max_attempts=1))


@flaky.step(start=True)
def charge(ctx: Any) -> Any:
    if not ctx.state.get("fixed"):
        raise RuntimeError("card processor down")
    return Done({"attempt": ctx.attempt})


def invoke(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit | None)
    assert "Traceback" not in result.output
    if code and "--json" not in args:
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")
    return result


def test_approval_flow_on_postgresql(pg_db: str, inline: Any) -> None:
    rid = start_run("cli_pg_approval", {"items": 3})
    inline.drain()

    listed = json.loads(invoke("approvals", "list", "--json").stdout)
    assert [a["run_id"] for a in listed] == [rid]
    shown = json.loads(invoke("runs", "show", rid, "--json").stdout)
    assert shown["status"] == "waiting" and shown["wait"]["prompt"] == "Buy 3 laptops?"
    assert rid in invoke("runs", "list").stdout

    refused = invoke("approvals", "approve", rid, "--actor", "intern", code=1)
    assert "'intern' may not decide" in refused.stderr
    assert get_run(rid).status == "waiting"

    invoke("approvals", "approve", rid, "--actor", "finance")
    inline.drain()
    assert get_run(rid).result == {"decision": "approved", "by": "finance"}
    kinds = [e["kind"] for e in json.loads(invoke("runs", "history", rid, "--json").stdout)]
    assert kinds == [e.kind for e in run_history(rid)]
    assert {"wait.refused", "wait.approved", "run.succeeded"} <= set(kinds)


def test_retry_and_attempt_numbers_on_postgresql(pg_db: str, inline: Any) -> None:
    rid = start_run("cli_pg_flaky", {})
    inline.drain()
    shown = CliRunner().invoke(cli, ["runs", "show", rid]).stdout
    assert "charge (seq 0, attempt 1)" in shown and "RuntimeError: card processor down" in shown
    assert "  Traceback (most recent call last):" in shown

    out = invoke("runs", "retry", rid, "--patch", '{"fixed": true}').stdout
    assert f"run {rid} will retry step charge (attempt 1 after the retry)" in out
    inline.drain()
    steps = json.loads(CliRunner().invoke(cli, ["runs", "show", rid, "--json"]).stdout)["steps"]
    assert [(s["attempt"], s["status"]) for s in steps] == [(1, "failed"), (1, "succeeded")]
    assert get_run(rid).result == {"attempt": 1}
    assert "retried by cli:" in invoke("runs", "show", rid).stdout


def test_audit_verify_detects_an_edited_row_on_postgresql(pg_db: str, inline: Any) -> None:
    rid = start_run("cli_pg_approval", {"items": 1})
    inline.drain()
    count = len(run_history(rid))
    assert f"verified: {count} events" in invoke("audit", "verify", rid).stdout

    with store.get_db().engine.begin() as conn:
        conn.execute(
            text("UPDATE ravel_audit SET data = CAST(:d AS jsonb) WHERE run_id = :r AND idx = 2"),
            {"d": '{"attempt": 99}', "r": rid},
        )
    assert "broken at event idx 2" in invoke("audit", "verify", rid, code=1).stderr
    report = json.loads(invoke("audit", "verify", rid, "--json", code=1).stdout)
    assert (report["ok"], report["first_bad_idx"]) == (False, 2)


@pytest.fixture
def empty_pg(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[str]:
    """A new PostgreSQL database that was never migrated; yields its URL."""
    if not pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} (required in CI)")
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    name = f"ravel_test_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    monkeypatch.setenv("RAVEL_HOME", str(tmp_path))
    monkeypatch.setenv("RAVEL_DATABASE_URL", url)  # the CLI's --database-url overwrites it
    reload_settings()
    store.reset_db()
    yield url
    store.reset_db()
    drop_database(name)


def test_unmigrated_postgresql_then_db_upgrade(empty_pg: str) -> None:
    line = invoke("--database-url", empty_pg, "runs", "list", code=1).stderr
    assert "is not migrated; run `ravel db upgrade`" in line
    assert "not migrated" in invoke("--database-url", empty_pg, "db", "current").stdout

    assert "upgraded from empty" in invoke("--database-url", empty_pg, "db", "upgrade").stdout
    store.reset_db()  # release pooled connections before inspecting
    engine = create_engine(empty_pg)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"ravel_runs", "ravel_audit", "ravel_alembic_version"} <= tables
    assert invoke("--database-url", empty_pg, "runs", "list", "--json").stdout.strip() == "[]"
