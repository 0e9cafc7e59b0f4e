"""Heartbeats of reapers and workers (pipeline.store.health), on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from pipeline.store import get_db, health, runs


def test_reaper_passes_are_counted_and_keep_the_last_error(any_db: str) -> None:
    db = get_db()
    assert health.last_reaper_pass(db) is None
    health.record_reaper_pass(db, "host/1", {"woken": 2, "expired": 0}, None)
    health.record_reaper_pass(db, "host/1", {"woken": 0, "expired": 1}, "boom: bad row")
    health.record_reaper_pass(db, "host/1", {"woken": 0, "expired": 0}, None)
    health.record_reaper_pass(db, "host/2", {"woken": 5}, None)

    found = {r.name: r for r in health.reapers(db)}
    assert found["host/1"].passes == 3
    assert found["host/1"].last_report == {"woken": 0, "expired": 0}
    assert found["host/1"].last_error == "boom: bad row"
    assert found["host/1"].last_error_at is not None
    assert found["host/2"].passes == 1 and found["host/2"].last_error is None
    assert 0 <= found["host/2"].age < 60
    last = health.last_reaper_pass(db)
    assert last is not None and last == max(r.last_pass_at for r in found.values())
    assert last.tzinfo is not None


def test_worker_heartbeat_refreshes_its_workflow_versions_only(any_db: str) -> None:
    db = get_db()
    runs.upsert_workflow(db, "refund", 1, "check", {"check": "ravel"})
    runs.upsert_workflow(db, "refund", 2, "check", {"check": "ravel"})
    runs.upsert_workflow(db, "other", 1, "a", {"a": "ravel"})
    before = {(w.name, w.version): w.last_seen_at for w in runs.list_workflows(db)}
    time.sleep(0.05)

    health.touch_worker(db, "celery@a", {"refund": [2]}, starting=True)
    after = {(w.name, w.version): w.last_seen_at for w in runs.list_workflows(db)}
    assert after[("refund", 2)] > before[("refund", 2)]
    assert after[("refund", 1)] == before[("refund", 1)]
    assert after[("other", 1)] == before[("other", 1)]

    health.touch_worker(db, "celery@a", {"refund": [2], "other": [1]})
    [worker] = health.workers(db)
    assert worker.name == "celery@a"
    assert worker.workflows == {"refund": [2], "other": [1]}
    assert worker.last_seen_at >= worker.started_at
    assert 0 <= worker.age < 60
