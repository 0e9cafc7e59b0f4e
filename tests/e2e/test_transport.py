"""What the Celery layer shows and refuses: Flower events, pickle, unknown tasks, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from pipeline import get_run, run_history, run_steps, start_run
from pipeline.settings import get_settings
from pipeline.testing.cluster import ROOT
from tasks.config import celery_config
from tests.support.workers import Cluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]


def _app() -> Celery:
    app = Celery("probe")
    app.conf.update(celery_config(get_settings()))
    return app


def test_a_parked_run_shows_as_parked_in_flower(pg_cluster: Cluster, tmp_path: Path) -> None:
    """Flower reads task events: the step that parks sends task-parked, not task-succeeded."""
    seen: list[dict[str, Any]] = []
    app = _app()
    ready = threading.Event()

    def listen() -> None:
        with app.connection_for_read() as conn:
            recv = app.events.Receiver(conn, handlers={"*": seen.append})
            ready.set()
            recv.capture(limit=None, timeout=None, wakeup=False)

    # A daemon thread: it ends with the test process (capture() blocks).
    threading.Thread(target=listen, daemon=True).start()
    ready.wait(10)
    pg_cluster.worker()
    run_id = start_run("e2e_approval", {"ledger": str(tmp_path / "ledger")})
    wait_for(lambda: get_run(run_id).status == "waiting", 30, "the run to park")
    try:
        wait_for(lambda: any(e.get("type") == "task-parked" for e in seen), 15, "task-parked")
    except AssertionError:
        raise AssertionError(f"events seen: {[e.get('type') for e in seen]}") from None
    parked = [e for e in seen if e.get("type") == "task-parked"]
    assert parked[0]["run_id"] == run_id
    uuid = parked[0]["uuid"]
    finished = [e["type"] for e in seen if e.get("uuid") == uuid]
    assert "task-succeeded" not in finished and "task-failed" not in finished
    received = [e for e in seen if e.get("type") == "task-received" and e.get("uuid") == uuid]
    assert received and received[0]["name"] == "e2e_approval.propose"


def test_pickle_and_unknown_tasks_are_refused(broker_cluster: Cluster, tmp_path: Path) -> None:
    worker = broker_cluster.worker()
    run_id = start_run("e2e_chain", {"ledger": str(tmp_path / "ledger"), "n": 1})
    wait_for(lambda: get_run(run_id).status == "succeeded", 30, "the run")
    before = run_steps(run_id)

    evil = _app()
    evil.conf.accept_content = ["json", "pickle"]
    queue = get_settings().default_queue
    evil.send_task(
        "e2e_chain.tick", kwargs={"run_id": run_id, "seq": 1}, queue=queue, serializer="pickle"
    )
    evil.send_task("os.system", args=["touch /tmp/ravel-pwned"], queue=queue)
    wait_for(
        lambda: "ContentDisallowed" in worker.log() or "disallowed" in worker.log(),
        20,
        "the pickle message to be refused",
    )
    wait_for(lambda: "unregistered task" in worker.log(), 20, "the unknown task to be refused")
    assert worker.alive()
    assert run_steps(run_id) == before
    # The worker still works after refusing them.
    again = start_run("e2e_chain", {"ledger": str(tmp_path / "ledger2"), "n": 1})
    wait_for(lambda: get_run(again).status == "succeeded", 30, "a run after the poison")


def test_operator_retry_with_the_cli(pg_cluster: Cluster, tmp_path: Path) -> None:
    pg_cluster.worker()
    pg_cluster.beat()
    state = {
        "ledger": str(tmp_path / "ledger"),
        "attempts": str(tmp_path / "attempts"),
        "fixed": str(tmp_path / "fixed"),
        "fail_times": 99,
    }
    run_id = start_run("e2e_flaky", state)
    wait_for(lambda: get_run(run_id).status == "failed", 60, "the run to fail")
    (tmp_path / "fixed").touch()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ravel"),
            "runs",
            "retry",
            run_id,
            "--actor",
            "ops:bob",
            "--patch",
            '{"ticket": "INC-7"}',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    wait_for(lambda: get_run(run_id).status == "succeeded", 30, "the retried run")
    assert get_run(run_id).state["ticket"] == "INC-7"
    # The effect journaled before the first failure was not run again by any attempt.
    assert (tmp_path / "ledger").read_text().splitlines() == [f"{run_id}:before"]
    retried = [e for e in run_history(run_id) if e.kind == "run.retried"]
    assert [(e.actor, e.data["patched_keys"]) for e in retried] == [("ops:bob", ["ticket"])]
