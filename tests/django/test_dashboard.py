"""The operator's dashboard inside Django (pipeline.contrib.django.dashboard), on PostgreSQL:
the Django user and groups sign in, links stay under the mount, decisions and operator actions
are audited as the username, and the dashboard's own CSRF token guards every POST."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from pipeline import get_run, run_history, start_run
from pipeline.contrib.django import conf
from pipeline.contrib.django.dashboard import COOKIE
from pipeline.testing.inline import InlineDispatcher
from tests.support.db_state import run_rows

pytestmark = pytest.mark.django_db
UI = "/ravel/ui"


@pytest.fixture
def parked(pg_db: str, inline: InlineDispatcher) -> str:
    """A dj_refund run waiting for an approval of group:finance."""
    import tests.django.flows  # noqa: F401 - the workflow the run is of

    run_id = start_run("dj_refund", {"amount": 250}, actor="shop")
    inline.drain()
    assert get_run(run_id).status == "waiting"
    return run_id


def _client(user: Any) -> Client:
    client = Client(enforce_csrf_checks=True)  # as in production: the view must be exempt
    client.force_login(user)
    return client


def _html(client: Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.content.decode()[-2000:]
    return page.content.decode()


def _field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no field {name} in {page[-2000:]}"
    return found.group(1)


def test_anonymous_goes_to_login_and_a_user_without_a_role_gets_a_clear_403(
    parked: str, people: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    anonymous = Client()
    page = anonymous.get(f"{UI}/runs", {"status": "waiting"})
    assert (page.status_code, page["Location"]) == (
        302,
        "/login/?next=/ravel/ui/runs%3Fstatus%3Dwaiting",
    )
    before = run_rows()
    posted = anonymous.post(f"{UI}/runs/{parked}/cancel", {"reason": "x", "confirm": "yes"})
    assert posted.status_code == 302 and posted["Location"].startswith("/login/")
    assert run_rows() == before

    strict = conf.Options(view_permission="auth.view_group", approve_permission="auth.view_group")
    monkeypatch.setattr(conf, "_loaded", strict)
    refused = _client(people["bob"]).get(f"{UI}/runs")
    assert refused.status_code == 403
    assert "bob has no Ravel role" in refused.content.decode()


def test_a_user_sees_the_runs_and_a_run_with_links_under_the_django_mount(
    parked: str, people: dict[str, Any]
) -> None:
    bob = _client(people["bob"])
    assert (bob.get(f"{UI}/")["Location"]) == f"{UI}/runs"
    runs = _html(bob, f"{UI}/runs")
    assert f'href="{UI}/runs/{parked}"' in runs
    assert f'href="{UI}/static/ravel.css' in runs and f'href="{UI}/workers"' in runs
    # The identity is the Django user's: no API-key sign-in, no sign-out form of the dashboard.
    assert ">bob<" in runs and "Sign out" not in runs
    login = bob.get(f"{UI}/login", {"next": f"{UI}/workers"})
    assert (login.status_code, login["Location"]) == (303, f"{UI}/workers")

    run = _html(bob, f"{UI}/runs/{parked}")
    assert "Refund 250?" in run and "group:finance" in run
    assert "bob is not among this wait" in run
    assert f'action="{UI}/runs/{parked}/cancel"' not in run  # not an operator
    css = bob.get(f"{UI}/static/ravel.css")
    assert css.status_code == 200 and css["Content-Type"].startswith("text/css")
    missing = bob.get(f"{UI}/nowhere")
    assert missing.status_code == 404 and f'href="{UI}/runs"' in missing.content.decode()


def test_a_finance_member_approves_as_her_django_group_with_the_dashboards_csrf_token(
    parked: str, people: dict[str, Any], inline: InlineDispatcher
) -> None:
    alice = _client(people["alice"])
    listed = _html(alice, f"{UI}/approvals")
    assert f'data-run-id="{parked}"' in listed and "Refund 250?" in listed
    cookie = alice.cookies[COOKIE]
    assert (cookie["path"], cookie["httponly"]) == (UI, True)
    wait_id = _field(listed, "wait_id")
    url = f"{UI}/runs/{parked}/approve"
    # The dashboard's API-key sign-in stays closed: the Django user is who acts.
    key = alice.post(f"{UI}/login", {"key": "any", "csrf_token": _field(listed, "csrf_token")})
    assert (key.status_code, key["Location"]) == (303, f"{UI}/runs")

    before = run_rows()
    forged = alice.post(url, {"wait_id": wait_id, "confirm": "yes"})  # no token
    assert forged.status_code == 400 and "security token" in forged.content.decode()
    wrong = alice.post(url, {"wait_id": wait_id, "confirm": "yes", "csrf_token": "x" * 43})
    assert wrong.status_code == 400
    assert run_rows() == before

    asked = alice.post(url, {"wait_id": wait_id, "csrf_token": _field(listed, "csrf_token")})
    confirm = asked.content.decode()
    assert asked.status_code == 200 and "Approve this approval?" in confirm
    assert "group:finance" in confirm and _field(confirm, "confirm") == "yes"
    assert run_rows() == before  # asking changes nothing

    done = alice.post(
        url,
        {
            "wait_id": _field(confirm, "wait_id"),
            "csrf_token": _field(confirm, "csrf_token"),
            "confirm": "yes",
        },
    )
    assert (done.status_code, done["Location"]) == (303, f"{UI}/runs/{parked}")
    assert "Approved as group:finance." in _html(alice, done["Location"])
    inline.drain()
    assert get_run(parked).status == "succeeded"
    assert [
        (e.actor, (e.data or {}).get("as"))
        for e in run_history(parked)
        if e.kind == "wait.approved"
    ] == [("alice", "group:finance")]


def test_only_an_operator_retries_or_cancels_and_the_cancel_is_audited_as_the_user(
    parked: str, people: dict[str, Any]
) -> None:
    alice = _client(people["alice"])  # an approver, not an operator
    token = _field(_html(alice, f"{UI}/runs/{parked}"), "csrf_token")
    before = run_rows()
    for action in ("retry", "cancel"):
        refused = alice.post(
            f"{UI}/runs/{parked}/{action}", {"csrf_token": token, "confirm": "yes"}
        )
        assert refused.status_code == 403, action
        assert "needs the role operator" in refused.content.decode()
    assert run_rows() == before

    olga = _client(people["olga"])  # staff: an operator by default
    page = _html(olga, f"{UI}/runs/{parked}")
    assert f'action="{UI}/runs/{parked}/cancel"' in page
    cancelled = olga.post(
        f"{UI}/runs/{parked}/cancel",
        {"csrf_token": _field(page, "csrf_token"), "reason": "duplicate", "confirm": "yes"},
    )
    assert (cancelled.status_code, cancelled["Location"]) == (303, f"{UI}/runs/{parked}")
    assert get_run(parked).status == "cancelled"
    last = run_history(parked)[-1]
    assert (last.kind, last.actor, last.data["reason"]) == ("run.cancelled", "olga", "duplicate")

    # A fork, with a state patch edited as JSON, is the user's too, in the new run's history.
    page = _html(olga, f"{UI}/runs/{parked}")
    forked = olga.post(
        f"{UI}/runs/{parked}/fork",
        {
            "csrf_token": _field(page, "csrf_token"),
            "seq": "0",
            "patch": '{"amount": 300}',
            "confirm": "yes",
        },
    )
    assert forked.status_code == 303, forked.content.decode()[-2000:]
    new_id = forked["Location"].rsplit("/", 1)[1]
    assert forked["Location"] == f"{UI}/runs/{new_id}" and new_id != parked
    first = run_history(new_id)[0]
    assert (first.kind, first.actor) == ("run.forked", "olga")
    assert get_run(new_id).state["amount"] == 300
