"""examples/django_project end to end, on PostgreSQL + Redis: one ``celery -A proj worker``
serves the shop's own task and Ravel's steps; a refund starts from a view after the order's
transaction commits, is refused to a customer outside finance, approved by alice (a member of
the Django group finance) on Ravel's approval page, and the history names her and the group."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import get_run, run_history
from pipeline.testing.cluster import CELERY, ROOT, Cluster, Proc, free_port, wait_for
from tests.e2e.browser import Browser, Page

PROJECT = ROOT / "examples" / "django_project"


def _manage(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _sign_in(base: str, name: str) -> Browser:
    browser = Browser(base)
    form = browser.get("/accounts/login/")
    signed = browser.post(
        "/accounts/login/",
        {
            "csrfmiddlewaretoken": form.field("csrfmiddlewaretoken"),
            "username": name,
            "password": name,
            "next": "/",
        },
    )
    assert (signed.status, signed.location) == (302, "/"), signed.text[:2000]
    return browser


def _until(browser: Browser, path: str, text: str, what: str) -> Page:
    found: list[Page] = []

    def shows() -> bool:
        found[:] = [browser.get(path)]
        return text in found[0].text

    wait_for(shows, 60, what, every=0.1)
    return found[0]


@pytest.mark.slow
def test_the_shop_takes_a_refund_from_a_view_to_a_finance_approval_on_one_worker(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    started = time.monotonic()
    env = pg_cluster._env(
        {
            "RAVEL_WORKFLOWS": "shop.flows",
            "SHOP_DATABASE": str(tmp_path / "shop.sqlite3"),
            "SHOP_QUEUE": f"{pg_cluster.env['RAVEL_DEFAULT_QUEUE']}-shop",
        }
    )
    _manage(env, "migrate", "--noinput")
    _manage(env, "demo_users")
    worker = Proc(
        "worker",
        [
            CELERY,
            "-A",
            "proj",
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
        cwd=PROJECT,
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
            "proj.wsgi:application",
        ],
        env,
        pg_cluster.logs / "web.log",
        cwd=PROJECT,
    )
    pg_cluster.procs += [worker, web]
    wait_for(lambda: "ready." in worker.log() or not worker.alive(), 60, "the worker")
    assert worker.alive(), worker.log()[-3000:]
    wait_for(lambda: "Serving on" in web.log() or not web.alive(), 30, "the web server")
    base = f"http://127.0.0.1:{port}"

    # bob orders: the receipt is the shop's own Celery task, on the same worker.
    bob = _sign_in(base, "bob")
    home = bob.get("/")
    placed = bob.post(
        "/orders/", {"csrfmiddlewaretoken": home.field("csrfmiddlewaretoken"), "amount": "250"}
    )
    assert placed.status == 302, placed.text[:2000]
    order = placed.location
    page = _until(bob, order, "Receipt sent", "the shop's receipt task")

    # The refund: the order changes and the run starts once that transaction committed.
    asked = bob.post(order + "refund/", {"csrfmiddlewaretoken": page.field("csrfmiddlewaretoken")})
    assert (asked.status, asked.location) == (302, order)
    found = re.search(r'id="refund-run" href="/ravel/runs/([0-9a-f-]{36})/"', bob.get(order).text)
    assert found, bob.get(order).text
    run_id = found.group(1)
    run_page = f"/ravel/runs/{run_id}/"
    _until(bob, run_page, 'id="run-status">waiting', "the run to park on finance")
    wait = get_run(run_id).wait
    assert wait is not None and wait.approvers == ["group:finance"]

    # bob is no member of finance: the page offers him no form, and his POST is refused.
    assert 'id="not-yours"' in bob.get(run_page + "approval/").text
    refused = bob.post(
        run_page + "approval/",
        {"csrfmiddlewaretoken": bob.cookie("csrftoken"), "wait_id": wait.id, "decision": "approve"},
    )
    assert refused.status == 403, refused.text[:2000]
    assert get_run(run_id).status == "waiting"

    # alice, in the Django group finance, approves on the page.
    alice = _sign_in(base, "alice")
    approval = alice.get(run_page + "approval/")
    assert "decide as <code>group:finance</code>" in approval.text
    decided = alice.post(
        run_page + "approval/",
        {
            "csrfmiddlewaretoken": approval.field("csrfmiddlewaretoken"),
            "wait_id": approval.field("wait_id"),
            "decision": "approve",
            "note": "ok",
        },
    )
    assert (decided.status, decided.location) == (302, run_page), decided.text[:2000]
    _until(alice, run_page, 'id="run-status">succeeded', "the approved run to finish")

    run = get_run(run_id)
    assert run.result == {
        "order_status": "refunded",
        "decision": "approved",
        "by": "alice",
        "as": "group:finance",
    }
    assert 'id="order-status">refunded' in bob.get(order).text  # a step used Django's ORM
    who = [
        (e.kind, e.actor, (e.data or {}).get("as"))
        for e in run_history(run_id)
        if e.kind.startswith(("run.started", "wait."))
    ]
    assert who == [
        ("run.started", "bob", None),
        ("wait.refused", "bob", None),
        ("wait.approved", "alice", "group:finance"),
    ]
    # The operator's dashboard, linked from the shop's layout, signed in as the Django user.
    assert 'id="dashboard" href="/ravel/ui/runs"' in alice.get("/").text
    dashboard = alice.get("/ravel/ui/runs")
    assert dashboard.status == 200 and f'href="/ravel/ui/runs/{run_id}"' in dashboard.text
    history = alice.get(f"/ravel/api/runs/{run_id}/history").json()["events"]
    assert ("wait.approved", "alice", "group:finance") in [
        (e["kind"], e["actor"], (e["data"] or {}).get("as")) for e in history
    ]

    log = worker.log()  # one worker ran both the shop's task and Ravel's steps
    assert "shop.send_receipt" in log and "shop_refund.settle" in log, log[-3000:]
    assert "Traceback" not in log + web.log()
    print(f"django example e2e: {time.monotonic() - started:.1f}s")
