"""Starting, listing, reading, retrying and cancelling runs, and sending events, over HTTP."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from pipeline import get_run, list_runs, run_history
from pipeline.settings import reload_settings
from tests.integration.web.support import (
    done_flow,
    error,
    event_flow,
    fragile_flow,
    kinds,
    parked,
    start,
)


def test_a_run_is_started_as_the_key_s_principal_and_read_back_in_its_json_form(api, inline):
    flow = done_flow()
    response = api.post("/runs", json={"workflow": flow, "input": {"order_id": 42}})
    assert response.status_code == 201
    run = response.get_json()
    assert response.headers["Location"] == f"/runs/{run['id']}"
    assert (run["workflow"], run["status"], run["input"], run["wait"]) == (
        flow,
        "pending",
        {"order_id": 42},
        None,
    )
    assert datetime.fromisoformat(run["created_at"]).utcoffset().total_seconds() == 0
    assert set(run) == set(get_run(run["id"]).to_json())
    assert run_history(run["id"])[0].actor == "ops"  # from the key, never from the body

    inline.drain()
    shown = api.get(f"/runs/{run['id']}", who="viewer")
    assert shown.status_code == 200
    assert shown.get_json() == json.loads(json.dumps(get_run(run["id"]).to_json()))
    assert shown.get_json()["result"] == {"order_id": 42}
    assert shown.headers["Cache-Control"] == "no-store"


def test_the_same_idempotency_key_and_body_return_the_first_run(api, inline):
    flow = done_flow()
    key = {"Idempotency-Key": "order-42-refund"}
    first = api.post("/runs", json={"workflow": flow, "input": {"a": 1, "b": [1, 2]}}, headers=key)
    assert first.status_code == 201
    # The same request again, its JSON written differently: the same request.
    text = '{ "input": {"b": [1,2], "a": 1},\n "workflow": ' + json.dumps(flow) + " }"
    again = api.raw("/runs", text, headers=key)
    assert again.status_code == 200, again.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert len(list_runs(workflow=flow)) == 1


@pytest.mark.parametrize("change", ["input", "workflow"])
def test_the_same_idempotency_key_with_another_body_is_refused_not_given_the_other_run(
    api, inline, unchanged, change
):
    flow, other = done_flow(), done_flow()
    key = {"Idempotency-Key": "k-1"}
    first = api.post("/runs", json={"workflow": flow, "input": {"amount": 10}}, headers=key)
    assert first.status_code == 201
    snapshot = unchanged()
    body = (
        {"workflow": flow, "input": {"amount": 9999}}
        if change == "input"
        else {"workflow": other, "input": {"amount": 10}}
    )
    refused = api.post("/runs", json=body, headers=key)
    error(refused, 409, "idempotency_mismatch", "k-1", "different", "nothing was started")
    assert first.get_json()["id"] not in refused.get_data(as_text=True)
    snapshot.check()


def test_an_idempotency_key_header_that_is_not_printable_ascii_is_refused(api, unchanged):
    snapshot = unchanged()
    for bad in ("", "x" * 256, "caf\u00e9"):
        response = api.post(
            "/runs", json={"workflow": done_flow(), "input": {}}, headers={"Idempotency-Key": bad}
        )
        error(response, 400, "invalid_header", "Idempotency-Key")
    snapshot.check()


def test_starting_is_refused_with_the_right_status_for_each_bad_request(api, unchanged):
    flow = done_flow()
    snapshot = unchanged()
    cases = [
        ({"workflow": "no-such-flow", "input": {}}, 422, "workflow_not_found", "no-such-flow"),
        ({"workflow": flow}, 400, "missing_field", "input"),
        ({"input": {}}, 400, "missing_field", "workflow"),
        ({"workflow": flow, "input": {}, "actor": "root"}, 400, "unknown_field", "'actor'"),
        ({"workflow": flow, "input": [1]}, 400, "invalid_field", "input", "an array"),
        ({"workflow": 7, "input": {}}, 400, "invalid_field", "workflow", "a number"),
        (
            {"workflow": flow, "input": {"k": "\u0000" * 70_000}},
            422,
            "value_too_large",
            "RAVEL_MAX_INPUT_BYTES",
        ),
    ]
    for body, status, code, *words in cases:
        error(api.post("/runs", json=body), status, code, *words)
    snapshot.check()


def test_a_smaller_input_limit_is_enforced_as_422(api, unchanged, monkeypatch):
    monkeypatch.setenv("RAVEL_MAX_INPUT_BYTES", "100")
    reload_settings()
    snapshot = unchanged()
    response = api.post("/runs", json={"workflow": done_flow(), "input": {"x": "y" * 200}})
    error(response, 422, "value_too_large", "100-byte limit", "RAVEL_MAX_INPUT_BYTES")
    snapshot.check()


def test_deep_json_is_refused_with_422_and_changes_nothing(api, unchanged):
    flow = done_flow()
    snapshot = unchanged()
    for depth in (300, 100_000):  # parsed and refused by Ravel; too deep to parse at all
        deep = "[" * depth + "]" * depth
        text = '{"workflow": ' + json.dumps(flow) + ', "input": {"x": ' + deep + "}}"
        error(api.raw("/runs", text), 422, "invalid_input", "nested more than 200 levels")
    snapshot.check()


def test_runs_are_listed_newest_first_filtered_and_paged_by_cursor(api, inline):
    flow, other = done_flow(), event_flow()
    ids = [start(api, flow, {"n": n}) for n in range(5)]
    start(api, other)
    inline.drain()

    seen, cursor, pages = [], None, 0
    while True:
        query = f"/runs?workflow={flow}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(query, who="viewer").get_json()
        seen += [r["id"] for r in page["runs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids)) and pages == 3

    waiting = api.get("/runs?status=waiting", who="viewer").get_json()
    assert [r["workflow"] for r in waiting["runs"]] == [other]
    assert waiting["runs"][0]["wait"]["kind"] == "event"
    assert waiting["next_cursor"] is None


def test_bad_list_queries_are_400_naming_what_to_send(api):
    cases = [
        ("/runs?status=done", "invalid_query", "unknown status", "succeeded"),
        ("/runs?limit=0", "invalid_query", "limit must be an integer from 1 to 500"),
        ("/runs?limit=abc", "invalid_query", "limit"),
        ("/runs?cursor=not-a-cursor", "invalid_cursor", "next_cursor"),
        ("/runs?colour=red", "unknown_field", "'colour'", "status, workflow"),
        ("/runs?limit=2&limit=3", "invalid_query", "more than once"),
    ]
    for path, code, *words in cases:
        error(api.get(path, who="viewer"), 400, code, *words)


def test_unknown_and_malformed_run_ids_are_404(api):
    for path in (
        "/runs/0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10",
        "/runs/not-a-uuid",
        "/runs/0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10/history",
        "/runs/x%00y/history",
    ):
        error(api.get(path, who="viewer"), 404, "run_not_found", "run")


def test_history_lists_the_audit_events_oldest_first(api, inline):
    run_id = start(api, done_flow())
    inline.drain()
    response = api.get(f"/runs/{run_id}/history", who="viewer")
    assert response.status_code == 200
    found = response.get_json()
    assert found["run_id"] == run_id
    assert [e["kind"] for e in found["events"]] == kinds(run_id)
    assert found["events"][0]["kind"] == "run.started" and found["events"][0]["actor"] == "ops"
    assert [e["idx"] for e in found["events"]] == sorted(e["idx"] for e in found["events"])


def test_a_failed_run_is_retried_with_a_state_patch_by_an_operator(api, inline, unchanged):
    run_id = start(api, fragile_flow())
    inline.drain()
    assert get_run(run_id).status == "failed"

    snapshot = unchanged()
    error(
        api.post(f"/runs/{run_id}/retry", json={}, who="alice"),
        403,
        "forbidden",
        "approver",
        "operator",
        "Nothing was changed",
    )
    error(
        api.post(f"/runs/{run_id}/retry", json={"state_patch": [1]}),
        400,
        "invalid_field",
        "state_patch",
    )
    error(api.post(f"/runs/{run_id}/retry", json={"patch": {}}), 400, "unknown_field", "'patch'")
    snapshot.check()

    response = api.post(f"/runs/{run_id}/retry", json={"state_patch": {"fixed": "yes"}})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "pending"
    inline.drain()
    assert get_run(run_id).result == {"fixed": "yes"}
    retried = next(e for e in run_history(run_id) if e.kind == "run.retried")
    assert retried.actor == "ops" and retried.data["patched_keys"] == ["fixed"]

    snapshot = unchanged()
    error(api.post(f"/runs/{run_id}/retry"), 409, "invalid_transition", "only failed runs")
    snapshot.check()


def test_a_live_run_is_cancelled_with_a_reason_and_a_finished_one_is_409(api, inline, unchanged):
    run_id, _ = parked(api, inline, event_flow())
    response = api.post(f"/runs/{run_id}/cancel", json={"reason": "duplicate request"}, who="carol")
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    cancelled = next(e for e in run_history(run_id) if e.kind == "run.cancelled")
    assert (cancelled.actor, cancelled.data["reason"]) == ("carol", "duplicate request")

    done = start(api, done_flow())
    inline.drain()
    snapshot = unchanged()
    error(api.post(f"/runs/{done}/cancel"), 409, "invalid_transition", "succeeded")
    error(api.post(f"/runs/{done}/cancel", json={"reason": 5}), 400, "invalid_field", "reason")
    error(api.post(f"/runs/{done}/cancel", who="viewer"), 403, "forbidden")
    snapshot.check()


def test_an_event_is_kept_before_the_run_parks_and_wakes_it_after(api, inline):
    run_id = start(api, event_flow())
    early = api.post(f"/runs/{run_id}/events/other", json={"payload": 1})
    assert early.status_code == 200
    assert early.get_json() == {"run_id": run_id, "event": "other", "delivered": False}
    inline.drain()
    assert get_run(run_id).status == "waiting"

    woke = api.post(f"/runs/{run_id}/events/paid", json={"payload": {"amount": 12495}})
    assert woke.get_json() == {"run_id": run_id, "event": "paid", "delivered": True}
    inline.drain()
    assert get_run(run_id).result == {"payload": {"amount": 12495}}
    received = next(e for e in run_history(run_id) if e.kind == "event.received")
    assert received.actor == "ops"


def test_bad_events_are_refused_and_change_nothing(api, inline, unchanged):
    run_id, _ = parked(api, inline, event_flow())
    done = start(api, done_flow())
    inline.drain()
    snapshot = unchanged()
    error(api.post(f"/runs/{done}/events/paid", json={}), 409, "invalid_transition", "live runs")
    error(api.post("/runs/0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10/events/paid"), 404, "run_not_found")
    error(
        api.post(f"/runs/{run_id}/events/paid", json={"data": 1}), 400, "unknown_field", "payload"
    )
    error(api.post(f"/runs/{run_id}/events/paid", who="alice"), 403, "forbidden")
    deep = '{"payload": ' + "[" * 500 + "]" * 500 + "}"
    error(api.raw(f"/runs/{run_id}/events/paid", deep), 422, "invalid_input", "nested")
    error(api.post(f"/runs/{run_id}/events/{'e' * 300}"), 422, "invalid_input", "event name")
    snapshot.check()
    assert get_run(run_id).status == "waiting"
