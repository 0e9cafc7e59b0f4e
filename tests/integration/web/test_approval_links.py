"""Approval links: the GET shows the question and changes nothing; only the POST with the
token decides, once, as the link's person; a link never crosses runs or waits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from pipeline import NotAuthorized, approve, get_run, run_history
from pipeline.approval_links import create_link, digest, link_path
from pipeline.cli import cli
from pipeline.store import approval_links, get_db
from pipeline.testing.inline import InlineDispatcher
from pipeline.web import create_app
from tests.integration.web.slack_support import approval_flow, park
from tests.support.db_state import run_rows

BASE = "https://ops.example.com/ravel"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def client(any_db: str, inline: InlineDispatcher) -> Iterator[FlaskClient]:
    yield create_app().test_client()


def _link(run_id: str, who: str = "alice", **kwargs) -> tuple[str, str]:
    made = create_link(run_id, who, created_by="ops", base_url=BASE, **kwargs)
    assert made.url == BASE + link_path(run_id, made.token)
    return link_path(run_id, made.token), made.token


def _post(client: FlaskClient, run_id: str, token: str, decision: str = "approve", **extra: str):
    return client.post(
        f"/runs/{run_id}/link",
        data={"token": token, "decision": decision, **extra},
        content_type=FORM,
    )


def _used(token: str) -> bool:
    found = approval_links.find(get_db(), digest(token))
    return found is not None and found.used_at is not None


def test_the_page_shows_the_proposed_action_escaped_and_changes_nothing(client, inline):
    flow = approval_flow(
        ["group:finance"],
        prompt="Pay <script>alert(1)</script>?",
        data={"tool": "pay_invoice", "arguments": {"amount": 250}},
    )
    run_id, wait_id = park(inline, flow)
    path, token = _link(run_id, groups=["finance"])
    before = run_rows()
    for _ in range(2):  # a mail scanner, then the person
        page = client.get(path)
        assert page.status_code == 200 and page.mimetype == "text/html"
        html = page.get_data(as_text=True)
        assert "Pay &lt;script&gt;alert(1)&lt;/script&gt;?" in html and "<script>" not in html
        assert "pay_invoice" in html and "&#34;amount&#34;: 250" in html
        assert "alice" in html and f'name="token" value="{token}"' in html
        assert f'action="/runs/{run_id}/link"' in html
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert page.headers["X-Frame-Options"] == "DENY"
        assert "form-action 'self'" in page.headers["Content-Security-Policy"]
        assert "Set-Cookie" not in page.headers
    assert run_rows() == before and not _used(token)
    link = approval_links.find(get_db(), digest(token))
    assert link is not None and link.wait_id == wait_id
    assert link.expires_at == get_run(run_id).wait.expires_at  # expires with the wait


def test_the_post_decides_once_as_the_links_person_and_the_link_is_then_used(client, inline):
    run_id, _ = park(inline, approval_flow(["group:finance"]))
    path, token = _link(run_id, groups=["finance"])
    done = _post(client, run_id, token)
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "Approved by alice (as group:finance)" in done.get_data(as_text=True)
    again = _post(client, run_id, token, "reject")
    assert again.status_code == 410 and "already used" in again.get_data(as_text=True)
    shown = client.get(path)
    assert shown.status_code == 410 and "already used: approved" in shown.get_data(as_text=True)
    assert 'name="token"' not in shown.get_data(as_text=True)
    decided = [
        (e.kind, e.actor, e.data.get("as"))
        for e in run_history(run_id)
        if e.kind.startswith("wait.")
    ]
    assert decided == [("wait.approved", "alice", "group:finance")]
    inline.drain()
    assert get_run(run_id).result["decision"] == "approved"


def test_a_rejection_carries_its_reason(client, inline):
    run_id, _ = park(inline, approval_flow(["bob"]))
    _, token = _link(run_id, "bob")
    assert _post(client, run_id, token, "reject", reason="  over budget ").status_code == 200
    rejected = next(e for e in run_history(run_id) if e.kind == "wait.rejected")
    assert (rejected.actor, rejected.data["data"]) == ("bob", "over budget")


def test_a_link_cannot_cross_runs_or_waits(client, inline):
    flow = approval_flow(["alice"], then_again=True)
    run_a, _ = park(inline, flow)
    run_b, _ = park(inline, flow)
    _, token_a = _link(run_a)
    before = run_rows()
    assert client.get(link_path(run_b, token_a)).status_code == 404
    crossed = _post(client, run_b, token_a)
    assert crossed.status_code == 404 and "not valid" in crossed.get_data(as_text=True)
    assert run_rows() == before and not _used(token_a)
    # A link of the run's first wait, after the run moved on to its second wait.
    approve(run_a, "alice", wait_id=get_run(run_a).wait.id)
    inline.drain()
    second = get_run(run_a).wait.id
    assert client.get(link_path(run_a, token_a)).status_code == 409
    stale = _post(client, run_a, token_a, "reject")
    assert stale.status_code == 409
    assert get_run(run_a).status == "waiting" and get_run(run_a).wait.id == second
    assert [e.kind for e in run_history(run_a)].count("wait.rejected") == 0


def test_an_expired_link_says_so_and_decides_nothing(client, inline):
    run_id, _ = park(inline, approval_flow(["alice"]))
    path, token = _link(run_id, valid_for=timedelta(milliseconds=300))
    time.sleep(0.4)
    shown = client.get(path)
    assert shown.status_code == 410 and "expired" in shown.get_data(as_text=True)
    refused = _post(client, run_id, token)
    assert refused.status_code == 410 and "expired" in refused.get_data(as_text=True)
    assert get_run(run_id).status == "waiting" and not _used(token)


def test_malformed_requests_are_refused_and_change_nothing(client, inline):
    run_id, _ = park(inline, approval_flow(["alice"]))
    _, token = _link(run_id)
    before = run_rows()
    for bad in ("short", "x" * 43 + "'--", "A" * 43, "%00" * 43, "a" * 100_000):
        assert client.get(f"/runs/{run_id}/link/{bad}").status_code == 404, bad[:20]
    assert client.get(f"/runs/not-a-run/link/{token}").status_code == 404
    assert _post(client, run_id, "").status_code == 404
    assert _post(client, run_id, token, "maybe").status_code == 400
    as_json = client.post(f"/runs/{run_id}/link", json={"token": token, "decision": "approve"})
    assert as_json.status_code == 400
    huge = _post(client, run_id, token, reason="x" * 20_000)
    assert huge.status_code == 400
    assert run_rows() == before and not _used(token)


def test_a_link_is_only_made_for_an_approver(client, inline):
    run_id, _ = park(inline, approval_flow(["group:finance"]))
    with pytest.raises(NotAuthorized):
        create_link(run_id, "bob", created_by="ops")
    with pytest.raises(NotAuthorized):
        create_link(run_id, "bob", groups=["legal"], created_by="ops")


def test_the_cli_prints_a_link_that_works(client, inline, monkeypatch):
    run_id, _ = park(inline, approval_flow(["group:finance"]))
    monkeypatch.delenv("RAVEL_PUBLIC_URL", raising=False)
    missing = CliRunner().invoke(cli, ["approvals", "link", run_id, "--for", "alice"])
    assert missing.exit_code == 1 and "RAVEL_PUBLIC_URL" in missing.output
    made = CliRunner().invoke(
        cli,
        [
            "approvals",
            "link",
            run_id,
            "--for",
            "alice",
            "--group",
            "finance",
            "--base-url",
            BASE + "/",
        ],
    )
    assert made.exit_code == 0, made.output
    url = made.stdout.strip().splitlines()[0]
    assert url.startswith(f"{BASE}/runs/{run_id}/link/")
    assert client.get(url.removeprefix(BASE)).status_code == 200
    refused = CliRunner().invoke(
        cli, ["approvals", "link", run_id, "--for", "bob", "--base-url", BASE]
    )
    assert refused.exit_code == 1 and "may not decide" in refused.output
