"""A real Flower shows what each step's attempt did: SUCCESS, RETRY, FAILURE, PARKED."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pipeline import get_run, start_run
from tests.support.workers import Cluster, free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]
FLOWS = "tests.e2e.flows,tests.e2e.health_flows"
SECRET = "sk-" + "live4f7Qz9XwT2mB8kR1"  # looks like an OpenAI key: redacted everywhere


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _flower_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthcheck", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _tasks_of(url: str, run_id: str) -> list[dict[str, Any]]:
    """Flower's tasks whose kwargs name the run (its search), oldest first."""
    found = _get(f"{url}/api/tasks?search={run_id}")
    return sorted(found.values(), key=lambda t: t.get("received") or 0)


def _settled(url: str, run_id: str, states: list[str]) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []

    def check() -> bool:
        nonlocal tasks
        tasks = _tasks_of(url, run_id)
        return [t["state"] for t in tasks] == states

    try:
        wait_for(check, 20, f"Flower to show {states} for run {run_id}", every=0.5)
    except AssertionError:
        raise AssertionError(
            f"Flower shows {[(t['name'], t['state']) for t in tasks]}, expected {states}"
        ) from None
    return tasks


def test_flower_tells_the_truth(pg_cluster: Cluster, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    flower = pg_cluster.celery(
        "flower",
        ["flower", f"--port={port}", "--address=127.0.0.1"],
        {"FLOWER_UNAUTHENTICATED_API": "true"},
    )
    wait_for(lambda: _flower_up(url) or not flower.alive(), 60, "Flower to listen")
    assert flower.alive(), flower.log()[-3000:]
    worker = pg_cluster.worker({"RAVEL_WORKFLOWS": FLOWS})
    pg_cluster.beat()

    broken = start_run("hb_broken", {"key": SECRET})
    fine = start_run("e2e_charge", {"ledger": str(tmp_path / "ledger")})
    parked = start_run("e2e_approval", {"ledger": str(tmp_path / "ledger")})
    refused = start_run("hb_refuse", {})
    wait_for(lambda: get_run(broken).status == "failed", 30, "the broken run to fail")
    wait_for(lambda: get_run(refused).status == "failed", 30, "the refused run to fail")
    wait_for(lambda: get_run(fine).status == "succeeded", 30, "the fine run to succeed")
    wait_for(lambda: get_run(parked).status == "waiting", 30, "the approval run to park")

    # Attempt 1 failed and was retried durably, attempt 2 failed the run for good.
    retried, failed = _settled(url, broken, ["RETRY", "FAILURE"])
    assert retried["name"] == failed["name"] == "hb_broken.call_vendor"
    assert "vendor refused the order (key [redacted])" in retried["exception"]
    assert "StepFailed" in failed["exception"]
    assert "RuntimeError: vendor refused the order (key [redacted])" in failed["exception"]
    assert "step traceback" in failed["traceback"] and "call_vendor" in failed["traceback"]
    for text in (json.dumps(retried), json.dumps(failed), worker.log(), flower.log()):
        assert SECRET not in text

    pay, receipt = _settled(url, fine, ["SUCCESS", "SUCCESS"])
    assert (pay["name"], receipt["name"]) == ("e2e_charge.pay", "e2e_charge.receipt")
    [decide] = _settled(url, refused, ["FAILURE"])  # the step returned Fail(reason)
    assert "order refused: over budget" in decide["exception"]
    [propose] = _settled(url, parked, ["PARKED"])
    assert propose["name"] == "e2e_approval.propose"
    # Reaper passes stay out of Flower's list.
    assert not _get(f"{url}/api/tasks?taskname=ravel.reap")
