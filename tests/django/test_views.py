"""pipeline.contrib.django: approvals decided by a Django user through their groups, with
CSRF enforced; refusals (another group, a GET, no token, a stale wait) change nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from pipeline import get_run, run_history, start_run
from pipeline.testing.inline import InlineDispatcher
from tests.support.db_state import run_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def parked(any_db: str, inline: InlineDispatcher) -> str:
    """A dj_refund run waiting for an approval of group:finance."""
    import tests.django.flows  # noqa: F401 - the workflow the run is of

    run_id = start_run("dj_refund", {"amount": 250}, actor="shop")
    inline.drain()
    assert get_run(run_id).status == "waiting"
    return run_id


def _client(user: Any) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _cookie_token(client: Client) -> str:
    """A CSRF token the client holds as a browser would (from any page with a form)."""
    token = "t" * 32
    client.cookies["csrftoken"] = token
    return token


def _token(page: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _only_audited(before: dict[str, Any], run_id: str) -> None:
    """Nothing changed since ``before`` but audit events (and the run row's chain head)."""
    now = run_rows()
    for table in set(now) - {"ravel_runs", "ravel_audit"}:
        assert now[table] == before[table], table
    run = get_run(run_id)
    assert (run.status, run.seq, run.state) == ("waiting", 1, {"amount": 250})


def _decisions(run_id: str) -> list[tuple[str, str | None, Any]]:
    return [
        (e.kind, e.actor, (e.data or {}).get("as"))
        for e in run_history(run_id)
        if e.kind.startswith("wait.")
    ]


def test_a_member_of_the_group_approves_on_the_page_and_history_names_person_and_group(
    parked: str, people: dict[str, Any], inline: InlineDispatcher
) -> None:
    alice = _client(people["alice"])
    page = alice.get(f"/ravel/runs/{parked}/approval/")
    assert page.status_code == 200
    html = page.content.decode()
    wait_id = get_run(parked).wait.id  # type: ignore[union-attr]
    assert "Refund 250?" in html and "&quot;amount&quot;: 250" in html  # prompt, action
    assert f'name="wait_id" value="{wait_id}"' in html
    assert "decide as <code>group:finance</code>" in html

    decided = alice.post(
        f"/ravel/runs/{parked}/approval/",
        {
            "csrfmiddlewaretoken": _token(html),
            "wait_id": wait_id,
            "decision": "approve",
            "note": "ok by finance",
        },
    )
    assert (decided.status_code, decided["Location"]) == (302, f"/ravel/runs/{parked}/")
    inline.drain()
    run = get_run(parked)
    assert run.status == "succeeded"
    assert run.result == {
        "decision": "approved",
        "by": "alice",
        "as": "group:finance",
        "note": {"note": "ok by finance"},
    }
    assert _decisions(parked) == [("wait.approved", "alice", "group:finance")]
    status = alice.get(f"/ravel/runs/{parked}/").content.decode()
    assert re.search(
        r"<code>wait.approved</code></td><td>alice</td><td>group:finance</td>", status
    ), status
    # The approval page of a decided run says who decided, and offers no form.
    after = alice.get(f"/ravel/runs/{parked}/approval/").content.decode()
    assert 'id="decided"' in after and "by alice as <code>group:finance</code>" in after
    assert 'id="decide"' not in after


def test_a_user_outside_the_group_is_refused_with_403_and_the_run_stays_parked(
    parked: str, people: dict[str, Any]
) -> None:
    bob = _client(people["bob"])
    page = bob.get(f"/ravel/runs/{parked}/approval/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="not-yours"' in html and 'id="decide"' not in html
    before = run_rows()
    refused = bob.post(
        f"/ravel/runs/{parked}/approval/",
        {
            "csrfmiddlewaretoken": _cookie_token(bob),
            "decision": "approve",
            "wait_id": get_run(parked).wait.id,
        },
    )  # type: ignore[union-attr]
    assert refused.status_code == 403
    assert "bob" in refused.content.decode() and 'id="error"' in refused.content.decode()
    _only_audited(before, parked)
    assert _decisions(parked) == [("wait.refused", "bob", None)]  # the refusal is audited


def test_a_get_never_decides(parked: str, people: dict[str, Any]) -> None:
    alice = _client(people["alice"])
    wait_id = get_run(parked).wait.id  # type: ignore[union-attr]
    before = run_rows()
    got = alice.get(f"/ravel/runs/{parked}/approval/", {"wait_id": wait_id, "decision": "approve"})
    assert got.status_code == 200
    json_get = alice.get(f"/ravel/api/runs/{parked}/approve")
    assert (json_get.status_code, json_get.json()["error"]) == (405, "method_not_allowed")
    assert json_get["Allow"] == "POST"
    assert run_rows() == before


def test_csrf_is_enforced_on_the_form_and_on_the_json_route(
    parked: str, people: dict[str, Any]
) -> None:
    alice = _client(people["alice"])
    wait_id = get_run(parked).wait.id  # type: ignore[union-attr]
    before = run_rows()
    no_token = alice.post(
        f"/ravel/runs/{parked}/approval/", {"wait_id": wait_id, "decision": "approve"}
    )
    assert no_token.status_code == 403 and b"CSRF" in no_token.content
    json_no_token = alice.post(
        f"/ravel/api/runs/{parked}/approve", {"wait_id": wait_id}, content_type="application/json"
    )
    assert json_no_token.status_code == 403
    assert run_rows() == before

    token = _token(alice.get(f"/ravel/runs/{parked}/approval/").content.decode())
    done = alice.post(
        f"/ravel/api/runs/{parked}/approve",
        {"wait_id": wait_id},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert done.status_code == 200, done.content
    assert (done.json()["actor"], done.json()["principal"]) == ("alice", "group:finance")


def test_json_routes_answer_like_the_blueprint(parked: str, people: dict[str, Any]) -> None:
    anonymous = Client()
    unauthorized = anonymous.get(f"/ravel/api/runs/{parked}")
    assert (unauthorized.status_code, unauthorized.json()["error"]) == (401, "unauthorized")
    assert unauthorized["Cache-Control"] == "no-store"
    page = anonymous.get(f"/ravel/runs/{parked}/")
    assert (page.status_code, page["Location"]) == (302, f"/login/?next=/ravel/runs/{parked}/")

    bob, alice = Client(), Client()  # no CSRF checks: the refusals below are Ravel's
    bob.force_login(people["bob"])
    alice.force_login(people["alice"])
    shown = bob.get(f"/ravel/api/runs/{parked}").json()
    assert (shown["status"], shown["wait"]["approvers"]) == ("waiting", ["group:finance"])
    assert [e["kind"] for e in bob.get(f"/ravel/api/runs/{parked}/history").json()["events"]][
        :2
    ] == ["run.started", "step.started"]
    assert bob.get("/ravel/api/approvals").json() == {"approvals": [], "next_cursor": None}
    listed = alice.get("/ravel/api/approvals").json()["approvals"]
    assert [(a["run_id"], a["as"]) for a in listed] == [(parked, "group:finance")]
    assert alice.get("/ravel/api/runs", {"status": "waiting"}).json()["runs"][0]["id"] == parked

    url = f"/ravel/api/runs/{parked}/approve"
    before = run_rows()
    cases = [
        (alice.post(url, "{nope", content_type="application/json"), 400, "invalid_json"),
        (alice.post(url, {"wait_id": "x"}, content_type="application/json"), 400, "invalid_field"),
        (
            alice.post(
                url,
                {"wait_id": shown["wait"]["id"], "who": "carol"},
                content_type="application/json",
            ),
            400,
            "unknown_field",
        ),
        (alice.post(url, "wait_id=1", content_type="text/plain"), 415, "unsupported_media_type"),
        (
            alice.post(
                url,
                {"wait_id": "00000000-0000-0000-0000-000000000000"},
                content_type="application/json",
            ),
            409,
            "wait_not_found",
        ),
        (
            alice.post(
                "/ravel/api/runs/not-a-run/approve",
                {"wait_id": shown["wait"]["id"]},
                content_type="application/json",
            ),
            404,
            "run_not_found",
        ),
        (
            bob.post(url, {"wait_id": shown["wait"]["id"]}, content_type="application/json"),
            403,
            "not_authorized",
        ),
        (
            alice.post(f"/ravel/api/runs/{parked}/cancel", content_type="application/json"),
            403,
            "forbidden",
        ),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]) == (status, code), response.content
        assert "Traceback" not in response.json()["message"]
    _only_audited(before, parked)
    assert _decisions(parked) == [("wait.refused", "bob", None)]

    olga = Client()
    olga.force_login(people["olga"])  # staff: an operator by default
    cancelled = olga.post(
        f"/ravel/api/runs/{parked}/cancel", {"reason": "duplicate"}, content_type="application/json"
    )
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert run_history(parked)[-1].actor == "olga"
