"""Logs as JSON lines (``RAVEL_LOG_FORMAT=json``) from a real worker, beat and ``ravel serve``
on PostgreSQL + Redis: a run's lines are found by ``run_id`` in all of them (its steps, the
reaper waking it, the API deciding it), every line about the run carries the field, and a
canary secret appears in none of them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pipeline import get_run, start_run
from pipeline.testing.cluster import Cluster, free_port, wait_for
from pipeline.web import keys as api_keys
from tests.e2e import log_flows  # noqa: F401 - the test process starts runs of it
from tests.support.serve import start_serve

CANARY = "sk-canary0123456789abcdefXYZ"
JSON_LOGS = {"RAVEL_LOG_FORMAT": "json"}


def _lines(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def _http(base: str, method: str, path: str, key: str, body: Any = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as failed:
        return int(failed.code)


def test_a_runs_lines_are_found_by_run_id_in_every_process_and_no_secret_leaks(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    keys_file = tmp_path / "api-keys.toml"
    alice, _ = api_keys.create(
        keys_file, "alice", principal="alice", roles=["approver"], groups=["finance"]
    )
    env = {**JSON_LOGS, "RAVEL_WORKFLOWS": "tests.e2e.log_flows", "VENDOR_KEY": CANARY}
    worker = pg_cluster.worker(extra_env=env)
    beat = pg_cluster.beat(extra_env=env)
    port = free_port()
    serve = start_serve(pg_cluster, keys_file, port, JSON_LOGS)
    base = f"http://127.0.0.1:{port}"

    run_id = start_run("e2e_logs_order", {"order": 42})
    wait_for(lambda: get_run(run_id).status == "waiting", 60, "the run to reach its approval")
    wait_id = get_run(run_id).wait.id  # type: ignore[union-attr]
    assert _http(base, "GET", f"/runs?cursor={CANARY}", alice) == 400  # the canary in a URL
    assert _http(base, "POST", f"/runs/{run_id}/approve", alice, {"wait_id": wait_id}) == 200
    wait_for(lambda: get_run(run_id).status == "succeeded", 60, "the approved run to finish")
    wait_for(lambda: '"paid"' in worker.log(), 10, "the last step's line")

    logs = {"worker": worker.log(), "beat": beat.log(), "serve": serve.log()}
    for name, text in logs.items():
        assert CANARY not in text, f"the canary leaked into the {name} log"
    worker_lines, serve_lines = _lines(logs["worker"]), _lines(logs["serve"])
    assert _lines(logs["beat"]), logs["beat"][-2000:]  # beat logs JSON too

    mine = [x for x in worker_lines if x.get("run_id") == run_id]
    by_logger = {x["logger"] for x in mine}
    assert {"shop", "ravel.engine", "ravel.reaper", "celery.app.trace"} <= by_logger, by_logger
    # Every line about the run says so in its fields, not only in its text.
    for line in worker_lines + serve_lines:
        if run_id in line["message"]:
            assert line.get("run_id") == run_id, line
    for line in mine:  # a step's lines, Celery's included, name its attempt
        assert line["logger"] == "ravel.reaper" or line.get("attempt"), line
    [checking] = [x for x in mine if x["message"].startswith("checking the order")]
    assert checking["message"].endswith("[redacted]")
    assert (checking["workflow"], checking["step"], checking["seq"], checking["attempt"]) == (
        "e2e_logs_order",
        "check",
        0,
        1,
    )
    retry = [x for x in mine if x["logger"] == "ravel.engine" and "retry in" in x["message"]]
    assert [(x["step"], x["attempt"]) for x in retry] == [("pay", 1)]
    assert "[redacted]" in retry[0]["message"]
    woke = [x for x in mine if x["logger"] == "ravel.reaper"]
    assert {x["step"] for x in woke} == {"pay"} and len(woke) == 2  # the sleep, the retry
    [paid] = [x for x in mine if x["message"] == "paid"]
    assert (paid["step"], paid["attempt"]) == ("done", 1)

    decided = [x for x in serve_lines if x.get("run_id") == run_id]
    assert [x["message"].split(" ")[:3] for x in decided] == [
        ["POST", f"/runs/{run_id}/approve", "200"]
    ]
    assert any(
        "[redacted]" in x["message"] for x in serve_lines if x["logger"] == "ravel.web.access"
    )
