"""The ``ravel`` CLI against a real (SQLite) database, runs driven in-process by ``inline``."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect, text

from pipeline import (
    Done,
    Fail,
    Next,
    RetryPolicy,
    WaitForApproval,
    WaitForEvent,
    Workflow,
    api,
    get_run,
    run_history,
    start_run,
    store,
)
from pipeline.cli import cli
from pipeline.settings import get_settings, reload_settings

approval_flow = Workflow("cli_approval", version=2)


@approval_flow.step(start=True)
def ask(ctx: Any) -> Any:
    return WaitForApproval(
        prompt=f"Refund {ctx.state['amount']}?",
        approvers=["finance"],
        timeout=timedelta(days=1),
        then="finish",
    )


@approval_flow.step
def finish(ctx: Any) -> Any:
    if ctx.wait_result.decision != "approved":
        return Fail(f"not approved: {ctx.wait_result.data}")
    return Done({"by": ctx.wait_result.actor, "data": ctx.wait_result.data})


card_flow = Workflow("cli_card", version=1)


@card_flow.step(start=True)
def charge(ctx: Any) -> Any:
    if not ctx.state.get("card_ok"):
        return Fail("card declined")
    return Done({"charged": ctx.state["amount"]})


boom_flow = Workflow("cli_boom", version=1, retry=RetryPolicy(max_attempts=1))


@boom_flow.step(start=True)
def prepare(ctx: Any) -> Any:
    return Next("pay")


@boom_flow.step
def pay(ctx: Any) -> Any:
    if not ctx.state.get("card_ok"):
        raise RuntimeError("card processor down")
    return Done({"paid_on_attempt": ctx.attempt})


event_flow = Workflow("cli_event", version=1)


@event_flow.step(start=True)
def park(ctx: Any) -> Any:
    return WaitForEvent("paid", timeout=timedelta(days=1), then="settle")


@event_flow.step
def settle(ctx: Any) -> Any:
    return Done({"payload": ctx.wait_result.data})


def ravel(*args: str) -> Result:
    """Run the CLI; it must succeed."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.output
    return result


def ravel_fails(*args: str, code: int = 1) -> str:
    """Run the CLI; it must fail with one ``error:`` line on stderr. Returns that line."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # handled, not a crash
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def waiting_approval(inline: Any, amount: int = 120) -> str:
    rid = start_run("cli_approval", {"amount": amount})
    inline.drain()
    assert get_run(rid).status == "waiting"
    return rid


def failed_card(inline: Any) -> str:
    rid = start_run("cli_card", {"amount": 30})
    inline.drain()
    assert get_run(rid).status == "failed"
    return rid


def kinds(rid: str) -> list[str]:
    return [e.kind for e in run_history(rid)]


# --- reading -------------------------------------------------------------------------------


def test_runs_list_table_json_and_filters(sqlite_db: str, inline: Any) -> None:
    waiting = waiting_approval(inline)
    failed = failed_card(inline)

    out = ravel("runs", "list").stdout
    for expected in (waiting, failed, "cli_approval", "cli_card", "waiting", "failed", "charge"):
        assert expected in out

    rows = json.loads(ravel("runs", "list", "--json").stdout)
    assert {r["id"]: r["status"] for r in rows} == {waiting: "waiting", failed: "failed"}
    assert rows[0]["id"] == failed  # newest first
    datetime.fromisoformat(rows[0]["updated_at"])
    assert rows[1]["wait"]["approvers"] == ["finance"]

    only_failed = json.loads(ravel("runs", "list", "--status", "failed", "--json").stdout)
    assert [r["id"] for r in only_failed] == [failed]
    only_flow = json.loads(ravel("runs", "list", "--workflow", "cli_approval", "--json").stdout)
    assert [r["id"] for r in only_flow] == [waiting]
    assert "no runs found" in ravel("runs", "list", "--status", "sleeping").stdout


def test_runs_show_text_and_json(sqlite_db: str, inline: Any) -> None:
    rid = waiting_approval(inline, amount=120)
    wait_id = get_run(rid).wait.id  # type: ignore[union-attr]

    out = ravel("runs", "show", rid).stdout
    for expected in (
        rid,
        "cli_approval (version 2)",
        "waiting",
        "Refund 120?",
        "finance",
        wait_id,
        '{"amount":120}',
        "steps",
        "ask",
        "inline",
    ):
        assert expected in out

    shown = json.loads(ravel("runs", "show", rid, "--json").stdout)
    assert shown["id"] == rid and shown["status"] == "waiting" and shown["step"] == "finish"
    assert shown["wait"]["kind"] == "approval" and shown["wait"]["id"] == wait_id
    assert shown["wait"]["prompt"] == "Refund 120?" and shown["wait"]["then"] == "finish"
    assert datetime.fromisoformat(shown["wait"]["expires_at"]) > datetime.fromisoformat(
        shown["created_at"]
    )
    assert shown["state"] == {"amount": 120} and shown["workflow_version"] == 2
    assert [(s["step"], s["status"], s["outcome"]) for s in shown["steps"]] == [
        ("ask", "succeeded", "wait")
    ]


def test_runs_history_text_and_json(sqlite_db: str, inline: Any) -> None:
    rid = waiting_approval(inline)
    out = ravel("runs", "history", rid).stdout
    assert "run.started" in out and "run.waiting" in out

    events = json.loads(ravel("runs", "history", rid, "--json").stdout)
    assert [e["kind"] for e in events] == kinds(rid)
    assert [e["idx"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["kind"] == "run.started" and events[0]["actor"] == "api"
    datetime.fromisoformat(events[0]["at"])


def test_approvals_list_shows_only_approval_waits(sqlite_db: str, inline: Any) -> None:
    approval = waiting_approval(inline)
    on_event = start_run("cli_event", {})
    inline.drain()
    assert get_run(on_event).status == "waiting"

    out = ravel("approvals", "list").stdout
    assert approval in out and "Refund 120?" in out and on_event not in out
    listed = json.loads(ravel("approvals", "list", "--json").stdout)
    assert [a["run_id"] for a in listed] == [approval]
    assert listed[0]["wait"]["id"] == get_run(approval).wait.id  # type: ignore[union-attr]
    assert listed[0]["wait"]["approvers"] == ["finance"]


def test_workflows_list(sqlite_db: str, inline: Any) -> None:
    assert "no workflow is registered" in ravel("workflows", "list").stdout
    waiting_approval(inline)
    flows = json.loads(ravel("workflows", "list", "--json").stdout)
    assert [(f["name"], f["version"], f["start_step"]) for f in flows] == [
        ("cli_approval", 2, "ask")
    ]
    assert set(flows[0]["steps"]) == {"ask", "finish"}
    assert "cli_approval" in ravel("workflows", "list").stdout


# --- approvals -----------------------------------------------------------------------------


def test_approve_by_a_non_approver_is_refused_and_audited(sqlite_db: str, inline: Any) -> None:
    rid = waiting_approval(inline)
    line = ravel_fails("approvals", "approve", rid, "--actor", "mallory")
    assert "'mallory' may not decide" in line and "finance" in line
    inline.drain()
    assert get_run(rid).status == "waiting"
    assert kinds(rid)[-1] == "wait.refused"


def test_approve_then_the_run_proceeds(sqlite_db: str, inline: Any) -> None:
    rid = waiting_approval(inline)
    out = ravel("approvals", "approve", rid, "--actor", "finance", "--data", '{"limit": 500}')
    assert f"run {rid}: approval" in out.stdout and "approved by finance" in out.stdout
    assert get_run(rid).status == "pending"
    inline.drain()
    run = get_run(rid)
    assert run.status == "succeeded"
    assert run.result == {"by": "finance", "data": {"limit": 500}}
    # Approving again is an idempotent success; rejecting now is refused.
    again = json.loads(ravel("approvals", "approve", rid, "--actor", "finance", "--json").stdout)
    assert again["decision"] == "approved" and again["run_id"] == rid
    assert "already approved" in ravel_fails("approvals", "reject", rid, "--actor", "finance")


def test_approve_with_invalid_json_changes_nothing(sqlite_db: str, inline: Any) -> None:
    rid = waiting_approval(inline)
    before = kinds(rid)
    assert "--data is not valid JSON" in ravel_fails(
        "approvals", "approve", rid, "--actor", "finance", "--data", "{limit: 500"
    )
    assert "must be a JSON object" in ravel_fails(
        "approvals", "approve", rid, "--actor", "finance", "--data", "[1, 2]"
    )
    assert get_run(rid).status == "waiting" and kinds(rid) == before


def test_approve_needs_an_explicit_actor(
    sqlite_db: str, inline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = waiting_approval(inline)
    monkeypatch.setenv("RAVEL_ACTOR", "finance")  # never taken as an approver's identity
    result = CliRunner().invoke(cli, ["approvals", "approve", rid])
    assert result.exit_code == 2 and "--actor" in result.stderr
    assert get_run(rid).status == "waiting"


def test_reject_with_reason_and_wait_id(sqlite_db: str, inline: Any) -> None:
    rid = waiting_approval(inline)
    wait_id = get_run(rid).wait.id  # type: ignore[union-attr]
    stale = ravel_fails(  # a stale screen: another wait id
        "approvals", "reject", rid, "--actor", "finance", "--wait-id", "0" * 36
    )
    assert f"has no wait {'0' * 36}" in stale and "stale" in stale
    assert get_run(rid).status == "waiting"
    decided = json.loads(
        ravel(
            "approvals",
            "reject",
            rid,
            "--actor",
            "finance",
            "--reason",
            "too much",
            "--wait-id",
            wait_id,
            "--json",
        ).stdout
    )
    assert decided == {**decided, "decision": "rejected", "wait_id": wait_id, "data": "too much"}
    inline.drain()
    assert get_run(rid).status == "failed" and "too much" in (get_run(rid).error or "")


# --- retry, cancel, events -----------------------------------------------------------------


def test_retry_of_a_run_that_did_not_fail_is_refused(sqlite_db: str, inline: Any) -> None:
    rid = waiting_approval(inline)
    assert "only failed runs can be retried" in ravel_fails("runs", "retry", rid)
    assert get_run(rid).status == "waiting"


def test_retry_with_a_patch_resumes_the_failed_run(sqlite_db: str, inline: Any) -> None:
    rid = failed_card(inline)
    assert "--patch is not valid JSON" in ravel_fails("runs", "retry", rid, "--patch", "{oops")
    assert "must be a JSON object" in ravel_fails("runs", "retry", rid, "--patch", "true")
    assert get_run(rid).status == "failed"

    out = ravel("runs", "retry", rid, "--actor", "ops:ann", "--patch", '{"card_ok": true}')
    assert out.stdout == (
        f"run {rid} will retry step charge (attempt 1 after the retry), "
        "retried by ops:ann; state keys patched: card_ok\n"
    )
    run = get_run(rid)
    assert run.status == "pending" and run.state["card_ok"] is True and run.error is None
    inline.drain()
    assert get_run(rid).status == "succeeded" and get_run(rid).result == {"charged": 30}
    retried = [e for e in run_history(rid) if e.kind == "run.retried"]
    assert [(e.actor, e.data["patched_keys"]) for e in retried] == [("ops:ann", ["card_ok"])]


def test_show_numbers_attempts_as_the_run_does_and_shows_the_traceback(
    sqlite_db: str, inline: Any
) -> None:
    rid = start_run("cli_boom", {})
    inline.drain()
    run = get_run(rid)
    assert (run.status, run.step, run.attempt) == ("failed", "pay", 1)

    shown = CliRunner().invoke(cli, ["runs", "show", rid])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert "pay (seq 1, attempt 1)" in shown.stdout
    error = next(i for i, line in enumerate(lines) if line.startswith("error "))
    assert lines[error].endswith("RuntimeError: card processor down")
    # The failed attempt's traceback, right under the error, down to the raising line.
    assert lines[error + 1].split() == ["traceback", "of", "seq", "1,", "attempt", "1:"]
    assert lines[error + 2] == "  Traceback (most recent call last):"
    trace = lines[error + 2 : next(i for i, line in enumerate(lines) if line.startswith("input"))]
    assert any("in pay" in line for line in trace) and "card processor down" in trace[-1]

    out = ravel("runs", "retry", rid, "--actor", "ops:ann", "--patch", '{"card_ok": true}')
    assert f"run {rid} will retry step pay (attempt 1 after the retry)" in out.stdout
    assert get_run(rid).attempt == 0  # not attempted yet since the retry
    inline.drain()
    run = get_run(rid)
    assert run.status == "succeeded" and run.result == {"paid_on_attempt": 1}
    assert run.attempt == 1

    text = ravel("runs", "show", rid).stdout
    assert re.search(r"pay \(seq \d+, attempt 1\)", text) and "Traceback" not in text
    rows = [line.split("│")[1:-1] for line in text.splitlines() if line.startswith("│")]
    cells = [[c.strip() for c in row[:4]] for row in rows]
    assert cells == [
        ["0", "1", "prepare", "succeeded"],
        ["1", "1", "pay", "failed"],
        ["-", "-", "pay", "retried by ops:ann"],
        ["1", "1", "pay", "succeeded"],
    ]
    as_json = json.loads(CliRunner().invoke(cli, ["runs", "show", rid, "--json"]).stdout)
    assert as_json["attempt"] == 1
    assert [(s["seq"], s["attempt"], s["status"]) for s in as_json["steps"]] == [
        (0, 1, "succeeded"),
        (1, 1, "failed"),
        (1, 1, "succeeded"),
    ]
    assert "card processor down" in as_json["steps"][1]["traceback"]


def test_retry_with_a_patch_file(sqlite_db: str, inline: Any, tmp_path: Path) -> None:
    rid = failed_card(inline)
    patch = tmp_path / "patch.json"
    patch.write_text('{"card_ok": true, "note": "new card"}')
    assert (
        "not both"
        in CliRunner()
        .invoke(cli, ["runs", "retry", rid, "--patch", "{}", "--patch-file", str(patch)])
        .stderr
    )
    shown = json.loads(ravel("runs", "retry", rid, "--patch-file", str(patch), "--json").stdout)
    assert shown["status"] == "pending" and shown["state"]["note"] == "new card"


def test_cancel(sqlite_db: str, inline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rid = waiting_approval(inline)
    monkeypatch.setenv("RAVEL_ACTOR", "ops:bob")
    out = ravel("runs", "cancel", rid, "--reason", "customer withdrew")
    assert f"run {rid} is cancelled" in out.stdout
    assert get_run(rid).status == "cancelled"
    last = run_history(rid)[-1]
    assert (last.kind, last.actor, last.data["reason"]) == (
        "run.cancelled",
        "ops:bob",
        "customer withdrew",
    )
    assert "cancelled" in ravel_fails("approvals", "approve", rid, "--actor", "finance")

    done = failed_card(inline)
    assert "only live runs can be cancelled" in ravel_fails("runs", "cancel", done)


def test_cancel_default_actor_is_the_os_user(sqlite_db: str, inline: Any) -> None:
    rid = waiting_approval(inline)
    ravel("runs", "cancel", rid)
    assert run_history(rid)[-1].actor.startswith("cli:")


def test_events_send_wakes_a_waiting_run(sqlite_db: str, inline: Any) -> None:
    rid = start_run("cli_event", {})
    inline.drain()
    assert "--payload is not valid JSON" in ravel_fails(
        "events", "send", rid, "paid", "--payload", "{"
    )
    assert get_run(rid).status == "waiting"
    out = ravel("events", "send", rid, "paid", "--payload", '{"ref": "tx-1"}', "--actor", "bank")
    assert "delivered" in out.stdout
    inline.drain()
    assert get_run(rid).result == {"payload": {"ref": "tx-1"}}
    assert "event.received" in kinds(rid)


def test_events_sent_early_are_kept(sqlite_db: str, inline: Any) -> None:
    rid = start_run("cli_event", {})  # not parked yet
    sent = json.loads(ravel("events", "send", rid, "paid", "--payload", "42", "--json").stdout)
    assert sent == {"run_id": rid, "event": "paid", "delivered": False}
    inline.drain()
    assert get_run(rid).result == {"payload": 42}


# --- audit ---------------------------------------------------------------------------------


def test_audit_verify_ok_then_detects_an_edited_row(sqlite_db: str, inline: Any) -> None:
    rid = waiting_approval(inline)
    ravel("approvals", "approve", rid, "--actor", "finance")
    inline.drain()
    count = len(run_history(rid))
    assert count >= 4
    out = ravel("audit", "verify", rid).stdout
    assert out.strip() == f"audit chain of run {rid} verified: {count} events"
    assert json.loads(ravel("audit", "verify", rid, "--json").stdout)["ok"] is True

    with store.get_db().engine.begin() as conn:
        conn.execute(
            text("UPDATE ravel_audit SET data = :d WHERE run_id = :r AND idx = 2"),
            {"d": '{"forged": true}', "r": rid},
        )
    line = ravel_fails("audit", "verify", rid)
    assert "idx 2" in line and "edited" in line

    result = CliRunner().invoke(cli, ["audit", "verify", rid, "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["ok"], report["first_bad_idx"], report["events"]) == (False, 2, 2)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "show", "not-a-uuid"],
        ["runs", "history", "not-a-uuid", "--json"],
        ["runs", "retry", "not-a-uuid"],
        ["runs", "cancel", "not-a-uuid"],
        ["approvals", "approve", "not-a-uuid", "--actor", "finance"],
        ["approvals", "reject", "not-a-uuid", "--actor", "finance"],
        ["events", "send", "not-a-uuid", "paid"],
        ["audit", "verify", "not-a-uuid"],
    ],
)
def test_a_malformed_run_id_is_one_line(sqlite_db: str, args: list[str]) -> None:
    assert "'not-a-uuid' is not a run id" in ravel_fails(*args)


def test_an_unknown_run_is_one_line(sqlite_db: str) -> None:
    line = ravel_fails("runs", "show", "0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10")
    assert "no run with id 0b7c5e0e" in line


@pytest.fixture
def own_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """For tests passing --database-url: the CLI sets RAVEL_DATABASE_URL; undo it after."""
    monkeypatch.setenv("RAVEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAVEL_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    yield
    reload_settings()
    store.reset_db()


def test_an_unmigrated_database_gets_the_upgrade_hint(own_url: None, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE host_app (x INTEGER)")
    line = ravel_fails("--database-url", f"sqlite:///{other}", "runs", "list")
    assert "not migrated" in line and "run `ravel db upgrade`" in line

    missing = tmp_path / "missing" / "ravel.db"
    line = ravel_fails("--database-url", f"sqlite:///{missing}", "approvals", "list")
    assert "run `ravel db upgrade`" in line
    assert not missing.exists() and not missing.parent.exists()


@pytest.mark.parametrize("args", [["runs", "list"], ["db", "upgrade"], ["approvals", "list"]])
def test_an_unsupported_database_is_one_line(
    own_url: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]
) -> None:
    expected = (
        "error: unsupported database mysql:// in RAVEL_DATABASE_URL; Ravel supports "
        "postgresql:// (production) and sqlite:/// (embedded default)"
    )
    assert ravel_fails("--database-url", "mysql://ravel:s3cret@db/ravel", *args) == expected
    monkeypatch.setenv("RAVEL_DATABASE_URL", "mysql+pymysql://ravel:s3cret@db/ravel")
    get_settings.cache_clear()  # as in a process started with it
    line = ravel_fails(*args)
    assert "unsupported database mysql+pymysql://" in line and "s3cret" not in line
    monkeypatch.setenv("RAVEL_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")


def test_db_upgrade_creates_the_tables(own_url: None, tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    url = f"sqlite:///{path}"
    assert "not migrated" in ravel("--database-url", url, "db", "current").stdout
    assert "upgraded from empty to revision" in ravel("--database-url", url, "db", "upgrade").stdout
    engine = create_engine(url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"ravel_runs", "ravel_audit", "ravel_waits", "ravel_alembic_version"} <= tables
    state = json.loads(ravel("--database-url", url, "db", "current", "--json").stdout)
    assert state["up_to_date"] is True and state["current"] == state["head"]
    assert "already at revision" in ravel("--database-url", url, "db", "upgrade").stdout
    assert ravel("--database-url", url, "runs", "list", "--json").stdout.strip() == "[]"


def test_an_unreachable_database_is_one_line_with_the_password_masked(own_url: None) -> None:
    url = "postgresql://ops:s3cret@127.0.0.1:1/ravel"
    line = ravel_fails("--database-url", url, "runs", "list")
    assert line.startswith("error: cannot reach the database at postgresql")
    assert "ops:***@127.0.0.1:1" in line and "s3cret" not in line


def test_an_unexpected_error_is_one_line_unless_traceback_is_asked(
    sqlite_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(api, "list_runs", boom)
    assert "unexpected RuntimeError: boom" in ravel_fails("runs", "list")
    result = CliRunner().invoke(cli, ["--traceback", "runs", "list"])
    assert isinstance(result.exception, RuntimeError)


def test_usage_errors_exit_2(sqlite_db: str) -> None:
    result = CliRunner().invoke(cli, ["runs", "list", "--status", "nonsense"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_version() -> None:
    assert "ravel, version" in ravel("--version").stdout


def test_the_installed_script_prints_no_traceback(sqlite_db: str) -> None:
    script = Path(sys.executable).parent / "ravel"
    if not script.exists():
        pytest.skip(f"the console script is not installed next to {sys.executable}")
    proc = subprocess.run(
        [str(script), "runs", "show", "not-a-uuid"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: 'not-a-uuid' is not a run id")
