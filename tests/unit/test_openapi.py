"""The OpenAPI document matches the blueprint: every route documented, every documented route
served with the same methods, and the schemas name exactly the fields the API sends."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pipeline import errors
from pipeline.status import RunStatus
from pipeline.views import HistoryEvent, RunView, WaitResult, WaitView
from pipeline.web import create_app
from pipeline.web.errors import STATUS
from pipeline.web.openapi import SCHEMAS, STATUSES, document

IGNORED = {"HEAD", "OPTIONS"}
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _served(prefix: str = "") -> dict[str, set[str]]:
    app = create_app(prefix)
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("ravel_api."):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule).removeprefix(prefix)
        found.setdefault(path, set()).update(m for m in rule.methods or () if m not in IGNORED)
    return found


def _documented() -> dict[str, set[str]]:
    return {path: {m.upper() for m in ops} for path, ops in document()["paths"].items()}


def test_every_route_is_documented_and_every_documented_route_is_served() -> None:
    assert _served() == _documented()
    assert _served("/api/ravel") == _documented()


def test_the_document_served_is_the_one_checked_and_names_its_mount_point() -> None:
    client = create_app("/api").test_client()
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    served = response.get_json()
    assert served["openapi"].startswith("3.1")
    assert served["servers"] == [{"url": "/api"}]
    assert set(served["paths"]) == set(_documented())


def test_every_path_parameter_is_declared_and_every_operation_lists_its_statuses() -> None:
    for path, ops in document()["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (method, path)
            statuses = {int(s) for s in op["responses"]}
            assert statuses & {200, 201}, (method, path)
            if op.get("security") != []:
                assert {400, 401, 500, 503} <= statuses, (method, path)
            if method == "post":
                assert {403, 413, 415, 422} <= statuses, (method, path)
            assert all(s in STATUSES or s in (200, 201) for s in statuses)


def test_every_mapped_error_status_is_documented() -> None:
    assert set(STATUS.values()) <= set(STATUSES)
    assert errors.NotAuthorized in STATUS and STATUS[errors.RunNotFound] == 404


def _props(name: str) -> set[str]:
    return set(SCHEMAS[name]["properties"])


def test_the_schemas_name_exactly_the_fields_of_the_json_form() -> None:
    wait = WaitView("w", "approval", "ok?", ["alice"], NOW, None, {"a": 1}, "next", NOW)
    run = RunView(
        "r", "refund", RunStatus.WAITING, "ask", {}, wait, None, None, 1, 0, 0.0, NOW, NOW
    )
    assert set(run.to_json()) == _props("Run")
    assert set(wait.to_json()) == _props("Wait")
    assert set(HistoryEvent("run.started", "ops", NOW, "ask", {}).to_json()) == _props(
        "HistoryEvent"
    )
    decided = WaitResult("approval", "approved", "alice", None, NOW, "w", "alice")
    assert {"run_id", *decided.to_json()} == _props("Decision")
    assert run.to_json()["created_at"] == "2026-12-01T09:30:00+00:00"
    assert run.to_json()["status"] == "waiting"
    assert SCHEMAS["Run"]["properties"]["status"]["enum"] == [s.value for s in RunStatus]
