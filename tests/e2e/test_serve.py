"""``ravel serve`` as a real process (waitress) on PostgreSQL + Redis, driven over HTTP with a
real worker: start a run, see it in the approvals of a person in the right group, refuse a
person outside it, approve with the wait id seen, and read the history."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pipeline.testing.cluster import Cluster, free_port, wait_for
from pipeline.web import keys as api_keys
from tests.support.serve import start_serve


class Http:
    """A tiny client: ``http.call("POST", "/runs", body, key="ops")`` -> (status, headers, json)."""

    def __init__(self, base: str, secrets: dict[str, str]) -> None:
        self.base = base
        self.secrets = secrets

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = "ops",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {self.secrets[key]}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as failed:
            return failed.code, dict(failed.headers), json.loads(failed.read())


@pytest.mark.slow
def test_ravel_serve_takes_a_run_from_start_to_a_group_approval(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    keys_file = tmp_path / "api-keys.toml"
    secrets = {}
    for name, role, groups in (
        ("ops", "operator", []),
        ("alice", "approver", ["finance"]),
        ("mallory", "approver", []),
    ):
        secrets[name], _ = api_keys.create(
            keys_file, name, principal=name, roles=[role], groups=groups
        )
    pg_cluster.worker(extra_env={"RAVEL_WORKFLOWS": "tests.e2e.http_flows"})
    port = free_port()
    server = start_serve(pg_cluster, keys_file, port)
    http = Http(f"http://127.0.0.1:{port}", secrets)

    body = {"workflow": "e2e_http_refund", "input": {"amount": 250}}
    status, headers, run = http.call("POST", "/runs", body, headers={"Idempotency-Key": "o-42"})
    assert status == 201, run
    assert headers["Location"] == f"/runs/{run['id']}"
    run_id = run["id"]

    def parked() -> bool:
        return http.call("GET", f"/runs/{run_id}", key="alice")[2]["status"] == "waiting"

    wait_for(parked, 60, "the run to park on its approval")
    _, _, shown = http.call("GET", f"/runs/{run_id}", key="alice")
    wait_id = shown["wait"]["id"]
    _, _, open_approvals = http.call("GET", "/approvals", key="alice")
    assert [(a["run_id"], a["as"], a["wait"]["prompt"]) for a in open_approvals["approvals"]] == [
        (run_id, "group:finance", "Refund 250?")
    ]
    assert http.call("GET", "/approvals", key="mallory")[2]["approvals"] == []

    status, _, refused = http.call(
        "POST", f"/runs/{run_id}/approve", {"wait_id": wait_id}, key="mallory"
    )
    assert (status, refused["error"]) == (403, "not_authorized"), refused
    status, _, decided = http.call(
        "POST", f"/runs/{run_id}/approve", {"wait_id": wait_id, "data": {"note": "ok"}}, key="alice"
    )
    assert status == 200, decided
    assert (decided["actor"], decided["principal"]) == ("alice", "group:finance")

    def finished() -> bool:
        return http.call("GET", f"/runs/{run_id}")[2]["status"] == "succeeded"

    wait_for(finished, 60, "the approved run to finish")
    assert http.call("GET", f"/runs/{run_id}")[2]["result"] == {
        "decision": "approved",
        "by": "alice",
        "as": "group:finance",
    }
    _, _, history = http.call("GET", f"/runs/{run_id}/history", key="alice")
    who = [
        (e["kind"], e["actor"], e["data"].get("as"))
        for e in history["events"]
        if e["kind"].startswith(("wait.", "run.started"))
    ]
    assert who == [
        ("run.started", "ops", None),
        ("wait.refused", "mallory", None),
        ("wait.approved", "alice", "group:finance"),
    ]

    # Idempotency over the wire: the same request finds the run, another body is refused.
    again = http.call("POST", "/runs", body, headers={"Idempotency-Key": "o-42"})
    assert (again[0], again[1].get("Idempotent-Replayed"), again[2]["id"]) == (200, "true", run_id)
    other = http.call(
        "POST", "/runs", {**body, "input": {"amount": 9}}, headers={"Idempotency-Key": "o-42"}
    )
    assert (other[0], other[2]["error"]) == (409, "idempotency_mismatch")

    # Bad requests over the wire: JSON answers with the right status.
    assert http.call("GET", "/runs", key=None)[0] == 401
    assert http.call("POST", "/runs", raw=b"{not json")[2]["error"] == "invalid_json"
    big = http.call("POST", "/runs", raw=b'{"input": "' + b"x" * (2 << 20) + b'"}')
    assert (big[0], big[2]["error"]) == (413, "payload_too_large")
    assert http.call("GET", "/nope")[:1] == (404,)

    log = server.log()
    assert f"ravel serve http://127.0.0.1:{port}" in log and "3 API key(s)" in log
    assert f"POST /runs/{run_id}/approve 403" in log and "Traceback" not in log
    server.kill(signal.SIGTERM)
    assert not server.alive()
