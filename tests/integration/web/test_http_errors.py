"""Authentication, transport and failure answers: every one JSON with the right status and a
message to act on, never a traceback, and nothing changed."""

from __future__ import annotations

import io
import json
import logging

import pytest
from flask import Flask

from pipeline import store
from pipeline.settings import reload_settings
from pipeline.web import Caller, Role, create_app, mount
from pipeline.web import keys as api_keys
from tests.integration.web.support import Api, approval_flow, done_flow, error, parked

PAGES = ["/runs", "/runs/0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10", "/approvals"]


def test_without_a_valid_key_every_route_is_401_with_a_bearer_challenge(api, unchanged):
    snapshot = unchanged()
    for path in PAGES:
        missing = api.get(path, who=None)
        error(missing, 401, "unauthorized", "Authorization: Bearer")
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="ravel"'
        wrong = api.get(path, who=None, headers={"Authorization": "Bearer rvl_wrong"})
        error(wrong, 401, "unauthorized", "not valid")
        assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
        basic = api.get(path, who=None, headers={"Authorization": "Basic dXNlcjpwYXNz"})
        error(basic, 401, "unauthorized", "malformed Authorization header")
    start = api.post(
        "/runs",
        json={"workflow": done_flow(), "input": {}},
        who=None,
        headers={"Authorization": "Bearer " + api.secrets["ops"][:-1]},
    )
    error(start, 401, "unauthorized")
    snapshot.check()


def test_a_revoked_key_is_refused_from_the_next_request_on(api):
    assert api.get("/runs", who="bob").status_code == 200
    api_keys.revoke(api.keys_path, "bob")
    error(api.get("/runs", who="bob"), 401, "unauthorized", "revoked")
    assert api.get("/runs", who="viewer").status_code == 200


def test_no_keys_configured_says_how_to_create_one(api, tmp_path):
    app = create_app(config={"RAVEL_API_KEYS_FILE": str(tmp_path / "none.toml")})
    response = app.test_client().get("/runs", headers={"Authorization": "Bearer rvl_x"})
    error(response, 401, "unauthorized", "no API keys are configured", "ravel keys create")


def test_a_broken_keys_file_is_503_and_its_path_stays_in_the_server_log(api, caplog):
    api.keys_path.write_text("[[keys]]\nname = 'x'\nroles = ['superuser']\nsha256 = 'ab'\n")
    with caplog.at_level(logging.ERROR, logger="ravel.web"):
        response = api.get("/runs", who="viewer")
    message = error(response, 503, "keys_misconfigured", "server log")
    assert str(api.keys_path) not in message
    assert str(api.keys_path) in caplog.text


def test_a_role_below_the_route_s_is_403(api, inline, unchanged):
    run_id, wait_id = parked(api, inline, _approvable())
    snapshot = unchanged()
    error(
        api.post("/runs", json={"workflow": done_flow(), "input": {}}, who="alice"),
        403,
        "forbidden",
        "'alice' has the role approver",
        "operator",
    )
    error(
        api.post(f"/runs/{run_id}/approve", json={"wait_id": wait_id}, who="viewer"),
        403,
        "forbidden",
        "viewer",
    )
    error(api.post(f"/runs/{run_id}/cancel", who="bob"), 403, "forbidden")
    snapshot.check()


def _approvable() -> str:
    return approval_flow(["vera", "bob"])


def test_a_body_that_is_not_json_is_415_and_malformed_json_is_400(api, unchanged):
    flow = done_flow()
    snapshot = unchanged()
    good = json.dumps({"workflow": flow, "input": {}})
    error(
        api.raw("/runs", good, content_type="text/plain"),
        415,
        "unsupported_media_type",
        "application/json",
        "text/plain",
    )
    error(
        api.raw("/runs", good, content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    )
    error(api.raw("/runs", '{"workflow": '), 400, "invalid_json", "not valid JSON")
    error(api.raw("/runs", good.replace("{}", '{"x": NaN}')), 400, "invalid_json", "NaN")
    error(api.raw("/runs", b'{"workflow": "\xff"}'), 400, "invalid_json", "UTF-8")
    error(api.raw("/runs", "[1, 2]"), 400, "invalid_body", "JSON object", "an array")
    error(api.raw("/runs", '"text"'), 400, "invalid_body", "a string")
    snapshot.check()
    # application/*+json and a charset are JSON too.
    response = api.raw("/runs", good, content_type="application/vnd.api+json; charset=utf-8")
    assert response.status_code == 201


def test_an_oversized_body_is_413_before_it_is_read(api, unchanged):
    api.app.config["RAVEL_API_MAX_BODY_BYTES"] = 2048
    snapshot = unchanged()
    big = json.dumps({"workflow": done_flow(), "input": {"x": "y" * 5000}})
    error(
        api.raw("/runs", big),
        413,
        "payload_too_large",
        "2048-byte limit",
        "RAVEL_API_MAX_BODY_BYTES",
    )
    # Without Content-Length (chunked): cut at the limit, never read whole.
    stream = io.BytesIO(big.encode())
    response = api.call(
        "POST",
        "/runs",
        input_stream=stream,
        content_type="application/json",
        environ_base={"wsgi.input_terminated": True},
    )
    error(response, 413, "payload_too_large", "2048-byte limit")
    assert stream.tell() <= 2049
    snapshot.check()


def test_unknown_routes_and_methods_answer_json(api):
    error(api.get("/nothing-here", who=None), 404, "not_found", "/nothing-here", "openapi.json")
    error(api.get("/runs/x/y/z"), 404, "not_found")
    response = api.call("DELETE", "/runs")
    error(response, 405, "method_not_allowed", "DELETE", "GET")
    assert "POST" in response.headers["Allow"]
    error(
        api.get("/runs/0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10/approve"),
        405,
        "method_not_allowed",
        "POST",
    )


def test_an_unexpected_error_is_500_with_an_id_and_no_traceback(api, caplog):
    def broken_identity(request: object) -> Caller:
        raise RuntimeError("secret internals: password=hunter2")

    api.app.config["RAVEL_API_IDENTITY"] = broken_identity
    with caplog.at_level(logging.ERROR, logger="ravel.web"):
        response = api.get("/runs")
    message = error(response, 500, "internal_error", "error id")
    error_id = response.get_json()["error_id"]
    assert error_id in message and "hunter2" not in response.get_data(as_text=True)
    assert error_id in caplog.text and "RuntimeError" in caplog.text


def test_a_host_identity_hook_decides_who_calls(api, inline):
    run_id, wait_id = parked(api, inline, _approvable())
    api.app.config["RAVEL_API_IDENTITY"] = lambda request: (
        Caller("bob", Role.APPROVER, ("staff",)) if request.headers.get("X-User") == "bob" else None
    )
    response = api.post(
        f"/runs/{run_id}/approve", json={"wait_id": wait_id}, who=None, headers={"X-User": "bob"}
    )
    assert response.status_code == 200 and response.get_json()["actor"] == "bob"
    error(api.get("/runs", who=None), 401, "unauthorized")  # no hook identity, no key


def test_an_unreachable_database_is_503(api, monkeypatch):
    monkeypatch.setenv("RAVEL_DATABASE_URL", "postgresql://ravel@127.0.0.1:1/none")
    reload_settings()
    store.reset_db()
    error(api.get("/runs", who="viewer"), 503, "store_unavailable", "cannot reach the database")
    error(api.post("/runs", json={"workflow": done_flow(), "input": {}}), 503, "store_unavailable")


def test_a_database_that_is_not_migrated_is_503_saying_what_to_run(api, monkeypatch, tmp_path):
    monkeypatch.setenv("RAVEL_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    reload_settings()
    store.reset_db()
    error(api.get("/runs", who="viewer"), 503, "database_not_migrated", "ravel db upgrade")


@pytest.mark.parametrize("prefix", ["/api/ravel", "/api/ravel/"])
def test_the_blueprint_mounts_under_a_prefix_beside_the_host_s_own_pages(api, inline, prefix):
    host = Flask("host")
    host.config["RAVEL_API_KEYS_FILE"] = str(api.keys_path)

    @host.get("/")
    def home() -> str:
        return "host home"

    @host.errorhandler(404)
    def host_404(exc: Exception) -> tuple[str, int]:
        return "host's own 404 page", 404

    mount(host, prefix)
    client = Api(host, api.secrets, api.keys_path)
    run_id = client.post("/api/ravel/runs", json={"workflow": done_flow(), "input": {}}).get_json()[
        "id"
    ]
    shown = client.get(f"/api/ravel/runs/{run_id}")
    assert shown.get_json()["id"] == run_id and shown.headers["Cache-Control"] == "no-store"
    error(client.get("/api/ravel/nope"), 404, "not_found")
    error(client.call("PUT", "/api/ravel/runs"), 405, "method_not_allowed")
    assert client.get("/", who=None).get_data(as_text=True) == "host home"
    elsewhere = client.get("/elsewhere", who=None)
    assert (elsewhere.status_code, elsewhere.get_data(as_text=True)) == (404, "host's own 404 page")
    doc = client.get("/api/ravel/openapi.json", who=None).get_json()
    assert doc["servers"] == [{"url": "/api/ravel"}]
