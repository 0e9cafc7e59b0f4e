"""examples/flask_app end to end, on PostgreSQL + Redis: one worker of the shop's Celery app
serves its task and Ravel's steps; a refund starts from a view, bob (no group) is refused,
alice (group finance) approves through the mounted blueprint with her session and the
page's CSRF token, and the history names her and the group."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from pipeline.testing.cluster import CELERY, ROOT, Cluster, Proc, free_port, wait_for
from tests.e2e.browser import Browser, Page

API = "/api/ravel"


def _sign_in(base: str, name: str) -> tuple[Browser, str]:
    browser = Browser(base)
    token = browser.get("/login").field("csrf_token")
    signed = browser.post("/login", {"csrf_token": token, "username": name, "password": name})
    assert (signed.status, signed.location) == (302, "/"), signed.text[:2000]
    return browser, browser.get("/").field("csrf_token")  # a new session: a new token


def _until(browser: Browser, path: str, *texts: str) -> Page:
    found: list[Page] = []

    def shows() -> bool:
        found[:] = [browser.get(path)]
        return all(t in found[0].text for t in texts)

    wait_for(shows, 60, f"{path} to show {texts}", every=0.1)
    return found[0]


@pytest.mark.slow
def test_the_flask_shop_takes_a_refund_to_a_finance_approval_through_the_blueprint(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    started = time.monotonic()
    env = pg_cluster._env(
        {
            "RAVEL_WORKFLOWS": "examples.flask_app.flows",
            "FLASK_SHOP_DATABASE": str(tmp_path / "flask_shop.sqlite3"),
            "FLASK_SHOP_QUEUE": f"{pg_cluster.env['RAVEL_DEFAULT_QUEUE']}-shop",
        }
    )
    worker = Proc(
        "worker",
        [
            CELERY,
            "-A",
            "examples.flask_app.worker",
            "worker",
            "-B",
            "-c",
            "2",
            "--loglevel",
            "INFO",
            "-s",
            str(tmp_path / "beat-schedule"),
            "--without-gossip",
            "--without-mingle",
        ],
        env,
        pg_cluster.logs / "worker.log",
        cwd=ROOT,
    )
    port = free_port()
    web = Proc(
        "web",
        [
            sys.executable,
            "-m",
            "waitress",
            "--listen",
            f"127.0.0.1:{port}",
            "examples.flask_app.app:app",
        ],
        env,
        pg_cluster.logs / "web.log",
        cwd=ROOT,
    )
    pg_cluster.procs += [worker, web]
    wait_for(lambda: "ready." in worker.log() or not worker.alive(), 60, "the worker")
    assert worker.alive(), worker.log()[-3000:]
    wait_for(lambda: "Serving on" in web.log() or not web.alive(), 30, "the web server")
    base = f"http://127.0.0.1:{port}"

    bob, bobs_token = _sign_in(base, "bob")
    asked = bob.post("/refunds", {"csrf_token": bobs_token, "amount": "250"})
    assert asked.status == 302, asked.text[:2000]
    page = _until(bob, asked.location, "Confirmation sent.", 'id="run-status">waiting')
    found = re.search(r'id="run-id">([0-9a-f-]{36})<', page.text)
    assert found, page.text
    run_id = found.group(1)
    run = bob.get(f"{API}/runs/{run_id}").json()
    assert run["wait"]["approvers"] == ["group:finance"]
    decide = f"{API}/runs/{run_id}/approve"
    body = {"wait_id": run["wait"]["id"]}

    refused = bob.post_json(decide, body, {"X-CSRF-Token": bobs_token})
    assert (refused.status, refused.json()["error"]) == (403, "not_authorized"), refused.text

    alice, alices_token = _sign_in(base, "alice")
    assert 'id="approve"' in alice.get(asked.location).text  # her page offers the buttons
    no_token = alice.post_json(decide, body)
    assert (no_token.status, no_token.json()["error"]) == (403, "csrf_failed")
    decided = alice.post_json(decide, body, {"X-CSRF-Token": alices_token})
    assert decided.status == 200, decided.text
    assert (decided.json()["actor"], decided.json()["principal"]) == ("alice", "group:finance")
    _until(alice, asked.location, 'id="run-status">succeeded')

    assert alice.get(f"{API}/runs/{run_id}").json()["result"] == {
        "decision": "approved",
        "by": "alice",
        "as": "group:finance",
    }
    events = alice.get(f"{API}/runs/{run_id}/history").json()["events"]
    who = [
        (e["kind"], e["actor"], (e["data"] or {}).get("as"))
        for e in events
        if e["kind"].startswith(("run.started", "wait."))
    ]
    assert who == [
        ("run.started", "bob", None),
        ("wait.refused", "bob", None),
        ("wait.approved", "alice", "group:finance"),
    ]

    log = worker.log()  # one worker ran both the shop's task and Ravel's steps
    assert "flask_shop.send_confirmation" in log and "flask_refund.settle" in log, log[-3000:]
    assert "Traceback" not in log + web.log()
    print(f"flask example e2e: {time.monotonic() - started:.1f}s")
