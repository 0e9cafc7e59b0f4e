"""Who may see and do what on the dashboard: sign-in with an API key into a signed, HttpOnly,
SameSite=Strict session; a CSRF token on every POST; roles; hostile text escaped and secrets
never rendered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from pipeline import get_run, start_run
from pipeline.testing.inline import InlineDispatcher
from pipeline.web import keys as api_keys
from pipeline.web import mount
from tests.integration.web.dashboard_support import Browser, build_app, hidden
from tests.integration.web.support import Unchanged, approval_flow, fragile_flow

App = tuple[Flask, dict[str, str], Path]


@pytest.fixture
def dash(sqlite_db: str, tmp_path: Path, inline: InlineDispatcher) -> Iterator[App]:
    yield build_app(tmp_path)


def _parked(inline: InlineDispatcher, flow: str, data: dict[str, object] | None = None) -> str:
    run_id = start_run(flow, data or {})
    inline.drain()
    assert get_run(run_id).status == "waiting"
    return run_id


def test_pages_need_a_valid_key_and_the_session_keeps_only_its_hash(dash: App) -> None:
    app, secrets, keys_file = dash
    anonymous = Browser(app)
    first = anonymous.get("/ui/runs?status=failed")
    assert first.status_code == 302
    assert first.headers["Location"] == "/ui/login?next=/ui/runs?status%3Dfailed"
    refresh = anonymous.get("/ui/runs/rows", headers={"X-Ravel-Refresh": "1"})
    assert refresh.status_code == 401  # a live refresh is told, not redirected

    login = anonymous.get("/ui/login")
    token = Browser.token(login)
    assert anonymous.client.post("/ui/login", data={"key": secrets["ops"]}).status_code == 400
    wrong = anonymous.client.post("/ui/login", data={"key": "rvl_nope", "csrf_token": token})
    assert wrong.status_code == 401 and "not a valid API key" in wrong.get_data(as_text=True)

    ok = anonymous.client.post(
        "/ui/login",
        data={"key": secrets["ops"], "csrf_token": token, "next": "/ui/runs?status=failed"},
    )
    assert (ok.status_code, ok.headers["Location"]) == (303, "/ui/runs?status=failed")
    cookie = ok.headers["Set-Cookie"]
    assert cookie.startswith("ravel_session=") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert secrets["ops"] not in cookie  # only the key's hash, signed
    page = anonymous.get("/ui/runs")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert secrets["ops"] not in page.get_data(as_text=True)

    # Another site as "next" is never followed.
    for target in ("https://evil.example/x", "//evil.example", "/elsewhere", "/ui/../x"):
        evil = Browser(app)
        token = Browser.token(evil.get("/ui/login"))
        sent = evil.client.post(
            "/ui/login", data={"key": secrets["viewer"], "csrf_token": token, "next": target}
        )
        assert sent.headers["Location"] == "/ui/runs", target

    # A revoked key ends its sessions at the next request; so does the session's age.
    api_keys.revoke(keys_file, "ops")
    assert anonymous.get("/ui/runs").status_code == 302
    viewer = Browser(app, secrets["viewer"]).signed_in()
    with viewer.client.session_transaction() as session:
        session["ravel_signed_in_at"] = int(time.time()) - 13 * 3600
    assert viewer.get("/ui/runs").status_code == 302


def test_every_post_needs_the_token_of_its_own_session(dash: App, inline: InlineDispatcher) -> None:
    app, secrets, _ = dash
    waiting = _parked(inline, approval_flow(["group:finance"]))
    failed = start_run(fragile_flow(), {})
    inline.drain()
    alice = Browser(app, secrets["alice"]).signed_in()
    ops = Browser(app, secrets["ops"]).signed_in()
    wait_id = hidden(alice.html(f"/ui/runs/{waiting}"), "wait_id")
    before = Unchanged()
    for who, path, fields in (
        (alice, f"/ui/runs/{waiting}/approve", {"wait_id": wait_id, "confirm": "yes"}),
        (ops, f"/ui/runs/{failed}/retry", {"patch": '{"fixed": true}', "confirm": "yes"}),
        (ops, f"/ui/runs/{waiting}/cancel", {"reason": "x", "confirm": "yes"}),
        (ops, "/ui/logout", {}),
    ):
        for csrf in (None, "forged", alice.csrf() if who is ops else ops.csrf()):
            refused = who.post(path, csrf=csrf, **fields)
            assert refused.status_code == 400, (path, csrf)
            assert "security token does not match" in refused.get_data(as_text=True)
    before.check()
    assert get_run(waiting).status == "waiting" and get_run(failed).status == "failed"
    assert ops.get("/ui/runs").status_code == 200  # still signed in: the logout was refused


def test_roles_decide_what_a_key_sees_and_may_do(dash: App, inline: InlineDispatcher) -> None:
    app, secrets, _ = dash
    waiting = _parked(inline, approval_flow(["group:finance"]))
    failed = start_run(fragile_flow(), {})
    inline.drain()
    viewer = Browser(app, secrets["viewer"]).signed_in()
    for path in ("/ui/runs", f"/ui/runs/{waiting}", "/ui/workers"):
        viewer.html(path)
    assert "Approvals" not in viewer.html("/ui/runs")  # not in the menu either
    assert "needs the role approver" in viewer.html("/ui/approvals", 403)
    page = viewer.html(f"/ui/runs/{waiting}")
    assert 'id="approve"' not in page and 'id="cancel"' not in page
    before = Unchanged()
    wait_id = get_run(waiting).wait.id  # type: ignore[union-attr]
    refused = viewer.post(f"/ui/runs/{waiting}/approve", wait_id=wait_id, confirm="yes")
    assert refused.status_code == 403
    alice = Browser(app, secrets["alice"]).signed_in()
    assert 'id="approve"' in alice.html(f"/ui/runs/{waiting}")
    assert 'id="retry"' not in alice.html(f"/ui/runs/{failed}")
    refused = alice.post(f"/ui/runs/{failed}/retry", patch="", confirm="yes")
    assert refused.status_code == 403 and "needs the role operator" in refused.get_data(
        as_text=True
    )
    before.check()
    ops = Browser(app, secrets["ops"]).signed_in()
    page = ops.html(f"/ui/runs/{failed}")
    assert 'id="retry"' in page and 'id="fork"' in page
    # ops is an operator but not among the approvers: the page says so, offers no buttons.
    page = ops.html(f"/ui/runs/{waiting}")
    assert 'id="approve"' not in page and "is not among this wait" in page


HOSTILE = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


def test_hostile_text_is_escaped_and_secrets_are_not_shown(
    dash: App, inline: InlineDispatcher
) -> None:
    from pipeline import Fail, WaitForApproval, Workflow
    from tests.integration._engine_support import unique

    app, secrets, _ = dash
    flow = Workflow(unique("hostile"))

    @flow.step(start=True)
    def ask(ctx):  # type: ignore[no-untyped-def]
        ctx.state["html"] = IMG
        ctx.state["api_key"] = "sk-live-0123456789abcdef"
        if ctx.state.get("fail"):
            return Fail(f"vendor said {HOSTILE}")
        return WaitForApproval(
            f"Pay {HOSTILE}?", approvers=["group:finance"], data={"note": IMG}, then="ask"
        )

    parked = _parked(inline, flow.name, {"note": HOSTILE})
    failed = start_run(flow.name, {"note": HOSTILE, "fail": True})
    inline.drain()
    alice = Browser(app, secrets["alice"]).signed_in()
    wait_id = get_run(parked).wait.id  # type: ignore[union-attr]
    pages = [
        alice.html(p)
        for p in (
            "/ui/runs",
            f"/ui/runs?q={HOSTILE}",
            "/ui/runs/rows",
            f"/ui/runs/{parked}",
            f"/ui/runs/{failed}",
            f"/ui/runs/{parked}/live?part=head",
            f"/ui/runs/{parked}/live?part=body",
            "/ui/approvals",
        )
    ]
    confirm = alice.post(f"/ui/runs/{parked}/approve", wait_id=wait_id, note=HOSTILE)
    assert confirm.status_code == 200
    pages.append(confirm.get_data(as_text=True))
    for page in pages:
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "sk-live-0123456789abcdef" not in page
    joined = "\n".join(pages)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in joined
    assert "&lt;img src=x onerror=" in joined
    assert "[redacted]" in alice.html(f"/ui/runs/{parked}")


def test_mounted_in_a_host_app_it_keeps_the_hosts_secret_and_pages(
    sqlite_db: str, tmp_path: Path
) -> None:
    _, secrets, keys_file = build_app(tmp_path)
    host = Flask("host")
    host.secret_key = "the host's own secret, at least 32 characters long"
    host.config["RAVEL_API_KEYS_FILE"] = str(keys_file)

    @host.get("/")
    def index() -> str:
        return "host home"

    mount(host, "/ops/ravel")
    assert host.secret_key == "the host's own secret, at least 32 characters long"
    client = host.test_client()
    assert client.get("/").get_data(as_text=True) == "host home"
    assert client.get("/nope").status_code == 404
    assert client.get("/ops/ravel/ui/runs").headers["Location"].startswith("/ops/ravel/ui/login")
    missing = client.get("/ops/ravel/ui/nope")
    assert (missing.status_code, missing.mimetype) == (404, "text/html")
    assert client.get("/ops/ravel/nope").get_json()["error"] == "not_found"  # the API: JSON
    login = client.get("/ops/ravel/ui/login")
    done = client.post(
        "/ops/ravel/ui/login", data={"key": secrets["ops"], "csrf_token": Browser.token(login)}
    )
    assert done.headers["Location"] == "/ops/ravel/ui/runs"
    assert client.get("/ops/ravel/ui/runs").status_code == 200
