"""``ravel runs show`` says what a pending run waits for when no worker serves its version."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import update

from models import WorkflowRecord, table_of
from pipeline import cancel_run
from pipeline.cli import cli
from pipeline.cli.output import when
from pipeline.store import get_db, runs
from pipeline.store._db import now_plus

FLOW = "cli_drain"


def _show(run_id: str) -> str:
    result = CliRunner().invoke(cli, ["runs", "show", run_id])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def _run_on(version: int) -> str:
    """A pending run of ``FLOW`` at ``version``, as ``start_run`` would create it."""
    run_id, created = runs.create_run(
        get_db(),
        workflow=FLOW,
        version=version,
        step="go",
        input={},
        idempotency_key=None,
        actor="test",
        redispatch_after=5,
    )
    assert created
    return run_id


def _last_seen(version: int, seconds_ago: float) -> None:
    workflows = table_of(WorkflowRecord)
    with get_db().begin() as conn:
        conn.execute(
            update(workflows)
            .where(workflows.c.name == FLOW, workflows.c.version == version)
            .values(last_seen_at=now_plus(-seconds_ago))
        )


def test_a_pending_run_of_a_version_no_worker_serves_says_so(any_db: str) -> None:
    runs.upsert_workflow(get_db(), FLOW, 1, "go", {"go": "q"})
    runs.upsert_workflow(get_db(), FLOW, 2, "go", {"go": "q"})
    _last_seen(1, seconds_ago=runs.SERVED_RECENTLY + 3600)  # v1's workers are gone
    stale, served, unknown = _run_on(1), _run_on(2), _run_on(3)

    out = _show(stale)
    seen = runs.get_workflow(get_db(), FLOW, 1)
    assert seen is not None and not seen.fresh
    assert (
        f"waiting for a worker: no worker serves cli_drain v1 (last seen {when(seen.last_seen_at)})"
    ) in out, out
    assert "no worker serves cli_drain v3 (never seen)" in _show(unknown)
    assert "waiting for a worker" not in _show(served)  # v2 is served: just queued

    cancel_run(stale, "test")  # only a pending run waits for a worker
    assert "waiting for a worker" not in _show(stale)
