"""The metrics exposition in-process (SQLite and PostgreSQL): the counts read from the
database at scrape time, what this process recorded, the WSGI app, and a database that
cannot be read."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline import (
    Done,
    StepContext,
    WaitForApproval,
    Workflow,
    approve,
    get_run,
    reject,
    start_run,
)
from pipeline.engine import execute_step
from pipeline.metrics import multiproc, wsgi_app
from pipeline.reaper import reap
from pipeline.retry import RetryPolicy
from pipeline.settings import reload_settings
from pipeline.store import get_db, reset_db
from pipeline.store.steps import claim
from tests.integration._engine_support import unique
from tests.support.agents import force_expiry

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(**kwargs: Any) -> Samples:
    app = wsgi_app(**kwargs)
    status: list[str] = []
    body = b"".join(
        app(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""},
            lambda s, h: status.append(s),
        )
    )
    assert status == ["200 OK"]
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def gate() -> Workflow:
    flow = Workflow(unique("mgate"), version=1)

    @flow.step(start=True)
    def ask(ctx: StepContext) -> Any:
        return WaitForApproval(
            prompt="Go?", approvers=["finance"], timeout=timedelta(days=1), then="go"
        )

    @flow.step
    def go(ctx: StepContext) -> Any:
        return Done(ctx.wait_result.decision if ctx.wait_result else None)

    return flow


def test_approvals_parked_runs_and_overdue_runs_are_read_from_the_database(any_db, inline):
    flow = gate()
    runs = [start_run(flow.name, {}) for _ in range(4)]
    inline.drain()
    approve(runs[0], "finance")
    reject(runs[1], "finance", "too dear")
    force_expiry(runs[2])
    before = scrape()
    assert get(before, "ravel_runs_overdue", due="wait_expiry") == 1
    assert get(before, "ravel_runs_overdue_seconds", due="wait_expiry") > 0  # type: ignore[operator]
    assert get(before, "ravel_runs_parked", workflow=flow.name, kind="approval") == 2
    reap()
    inline.drain()
    samples = scrape()
    decided = "ravel_approvals_decided_total"
    assert get(samples, decided, workflow=flow.name, decision="approved") == 1
    assert get(samples, decided, workflow=flow.name, decision="rejected") == 1
    assert get(samples, decided, workflow=flow.name, decision="expired") == 1
    assert get(samples, "ravel_runs_parked", workflow=flow.name, kind="approval") == 1
    assert get(samples, "ravel_runs", workflow=flow.name, status="succeeded") == 3
    assert get(samples, "ravel_runs", workflow=flow.name, status="waiting") == 1
    assert get(samples, "ravel_runs_overdue", due="wait_expiry") == 0
    assert get(samples, "ravel_reaper_last_pass_age_seconds") is not None
    assert get(samples, "ravel_reaper_actions_total", action="expired") is not None


def test_what_this_process_recorded_is_exposed_with_the_database_counts(any_db, inline):
    flow = Workflow(unique("mretry"), version=1)

    @flow.step(start=True, retry=RetryPolicy(max_attempts=2, initial_delay=30))
    def flaky(ctx: StepContext) -> Any:
        if ctx.attempt == 1:
            raise RuntimeError("down")
        return Done(None)

    rid = start_run(flow.name, {})
    inline.drain()
    assert get_run(rid).status == "sleeping"
    samples = scrape()
    assert get(samples, "ravel_step_retries_total", workflow=flow.name, step="flaky") == 1
    assert (
        get(samples, "ravel_step_attempts_total", workflow=flow.name, step="flaky", outcome="retry")
        == 1
    )
    assert get(samples, "ravel_runs", workflow=flow.name, status="sleeping") == 1
    assert get(samples, "ravel_runs_overdue", due="wake") == 0  # due in 30 s, not yet
    assert not [k for k in samples if k[0].endswith("_created")]
    without_db = scrape(database=False)
    assert get(without_db, "ravel_runs", workflow=flow.name, status="sleeping") is None
    assert get(without_db, "ravel_step_retries_total", workflow=flow.name, step="flaky") == 1


def test_a_database_that_cannot_be_read_still_answers_the_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RAVEL_HOME", str(tmp_path))
    monkeypatch.setenv("RAVEL_DATABASE_URL", f"sqlite:///{tmp_path}/missing/dir/ravel.db")
    reload_settings()
    reset_db()
    try:
        samples = scrape()
    finally:
        reset_db()
    assert get(samples, "ravel_database_up") == 0
    assert not [k for k in samples if k[0] == "ravel_runs"]


def test_a_worker_empties_its_own_folder_but_never_the_operators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RAVEL_HOME", str(tmp_path))
    monkeypatch.delenv(multiproc.ENV, raising=False)
    reload_settings()
    folder = multiproc.worker_folder("w1@host/x")
    assert folder == tmp_path / "metrics" / "w1@host_x"
    folder.mkdir(parents=True)
    (folder / "counter_123.db").write_bytes(b"old")
    other = multiproc.worker_folder("w2@host")
    other.mkdir(parents=True)
    (other / "counter_456.db").write_bytes(b"theirs")
    import prometheus_client.values as values

    chosen = values.ValueClass
    try:
        assert multiproc.prepare_worker("w1@host/x") == folder
        assert list(folder.iterdir()) == []
        assert (other / "counter_456.db").exists()
        assert os.environ[multiproc.ENV] == str(folder)
        assert multiproc.in_multiprocess_mode()
        own = tmp_path / "own"
        own.mkdir()
        (own / "gauge_livesum_9.db").write_bytes(b"x")
        (own / "counter_9.db").write_bytes(b"x")
        # Set directly, as prepare_worker set it: monkeypatch would restore prepare_worker's
        # value at teardown and leak it to the tests (and the workers they start) after this.
        os.environ[multiproc.ENV] = str(own)
        assert multiproc.prepare_worker("w1@host/x") == own
        assert (own / "counter_9.db").exists()  # never emptied: it may be shared
        multiproc.process_exited(9)
        assert not (own / "gauge_livesum_9.db").exists()
        assert (own / "counter_9.db").exists()
        assert str(other / "counter_456.db") in multiproc.metric_files()
    finally:
        values.ValueClass = chosen
        os.environ.pop(multiproc.ENV, None)


def test_a_claim_of_an_expired_lease_counts_as_a_takeover(any_db, inline):
    flow = Workflow(unique("mtake"), version=1)

    @flow.step(start=True)
    def only(ctx: StepContext) -> Any:
        return Done(None)

    rid = start_run(flow.name, {})
    wake = inline.queue.popleft()
    # A worker claims the run and dies before committing; its lease runs out.
    assert claim(get_db(), rid, wake.seq, wake.step, 0.01, "dead", [(flow.name, 1)])
    time.sleep(0.05)
    assert execute_step(rid, wake.seq, wake.step, worker="w2").committed
    samples = scrape(database=False)
    assert get(samples, "ravel_lease_takeovers_total", workflow=flow.name, step="only") == 1
    assert (
        get(samples, "ravel_step_attempts_total", workflow=flow.name, step="only", outcome="done")
        == 1
    )


def test_the_example_dashboard_and_alerts_use_only_metrics_ravel_exposes(sqlite_db, inline):
    flow = gate()
    start_run(flow.name, {})
    inline.drain()
    reap()
    app = wsgi_app()
    body = b"".join(
        app(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""},
            lambda s, h: None,
        )
    ).decode()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    exposed = {
        f.name + suffix for f in text_string_to_metric_families(body) for suffix in suffixes[f.type]
    }
    folder = Path(__file__).resolve().parents[2] / "examples" / "monitoring"
    dashboard = json.loads((folder / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs.append((folder / "alerts.yml").read_text())
    used = {name for e in exprs for name in re.findall(r"\bravel_[a-z_]+", e)}
    assert used, "no metric found in the examples"
    assert used - exposed == set()
    assert {
        "ravel_runs_overdue_seconds",
        "ravel_reaper_last_pass_age_seconds",
        "ravel_step_attempts_total",
    } <= used
