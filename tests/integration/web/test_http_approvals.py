"""Approvals over HTTP: what a caller may decide, decided as the key's principal and groups,
with the wait id the caller saw; every refusal leaves the run as it was."""

from __future__ import annotations

import uuid
from datetime import timedelta

from pipeline import get_run, run_history
from tests.integration.web.support import (
    approval_flow,
    done_flow,
    error,
    kinds,
    parked,
    start,
)
from tests.support.db_state import run_rows


def test_approvals_lists_what_the_caller_may_decide_and_as_whom(api, inline):
    finance, _ = parked(api, inline, approval_flow(["group:finance"]))
    carols, _ = parked(api, inline, approval_flow(["carol"]))
    both, _ = parked(api, inline, approval_flow(["alice", "group:finance"]))

    def listed(who: str) -> list[tuple[str, str]]:
        response = api.get("/approvals", who=who)
        assert response.status_code == 200, response.get_json()
        found = response.get_json()
        assert found["next_cursor"] is None
        return [(a["run_id"], a["as"]) for a in found["approvals"]]

    assert listed("alice") == [(both, "alice"), (finance, "group:finance")]
    assert listed("carol") == [(carols, "carol")]
    assert listed("bob") == []
    first = api.get("/approvals", who="alice").get_json()["approvals"][0]
    assert first["wait"]["id"] == get_run(both).wait.id
    assert first["wait"]["approvers"] == ["alice", "group:finance"]
    assert first["wait"]["prompt"] == "Refund 250?"
    error(api.get("/approvals", who="viewer"), 403, "forbidden", "approver")


def test_approvals_are_paged_by_cursor(api, inline):
    flow = approval_flow(["group:finance"])
    ids = [parked(api, inline, flow)[0] for _ in range(3)]
    page = api.get(f"/approvals?workflow={flow}&limit=2", who="alice").get_json()
    assert [a["run_id"] for a in page["approvals"]] == [ids[2], ids[1]]
    rest = api.get(f"/approvals?limit=2&cursor={page['next_cursor']}", who="alice").get_json()
    assert [a["run_id"] for a in rest["approvals"]] == [ids[0]]
    assert rest["next_cursor"] is None
    error(api.get("/approvals?status=waiting", who="alice"), 400, "unknown_field", "'status'")


def test_a_member_of_the_group_approves_and_the_history_names_person_and_group(api, inline):
    run_id, wait_id = parked(api, inline, approval_flow(["group:finance"]))
    response = api.post(
        f"/runs/{run_id}/approve", json={"wait_id": wait_id, "data": {"note": "ok"}}, who="alice"
    )
    assert response.status_code == 200, response.get_json()
    decided = response.get_json()
    assert decided["run_id"] == run_id and decided["wait_id"] == wait_id
    assert (decided["decision"], decided["actor"], decided["principal"]) == (
        "approved",
        "alice",
        "group:finance",
    )
    inline.drain()
    assert get_run(run_id).result == {
        "decision": "approved",
        "actor": "alice",
        "principal": "group:finance",
        "data": {"note": "ok"},
    }
    approved = next(e for e in run_history(run_id) if e.kind == "wait.approved")
    assert (approved.actor, approved.data["as"]) == ("alice", "group:finance")


def test_a_rejection_carries_its_reason_and_a_different_later_decision_is_409(
    api, inline, unchanged
):
    run_id, wait_id = parked(api, inline, approval_flow(["carol"]))
    response = api.post(
        f"/runs/{run_id}/reject", json={"wait_id": wait_id, "reason": "over budget"}, who="carol"
    )
    assert response.status_code == 200
    assert response.get_json()["decision"] == "rejected"
    inline.drain()
    assert get_run(run_id).result["data"] == "over budget"

    snapshot = unchanged()
    error(
        api.post(f"/runs/{run_id}/approve", json={"wait_id": wait_id}, who="carol"),
        409,
        "wait_already_decided",
        "already rejected by carol",
    )
    snapshot.check()
    again = api.post(f"/runs/{run_id}/reject", json={"wait_id": wait_id}, who="carol")
    assert again.status_code == 200 and again.get_json()["decision"] == "rejected"
    assert kinds(run_id).count("wait.rejected") == 1


def test_a_caller_outside_the_approvers_is_refused_and_only_the_refusal_is_recorded(
    api, inline, unchanged
):
    run_id, wait_id = parked(api, inline, approval_flow(["group:finance"]))
    before = run_history(run_id)
    snapshot = unchanged()
    error(
        api.post(f"/runs/{run_id}/approve", json={"wait_id": wait_id}, who="bob"),
        403,
        "not_authorized",
        "'bob' may not decide",
        "group:finance",
    )
    error(
        api.post(f"/runs/{run_id}/approve", json={"wait_id": wait_id}, who="carol"),
        403,
        "not_authorized",
        "'carol'",
    )  # an operator is no approver unless the wait says so
    # The refusals are on the record (wait.refused), and nothing else changed.
    after = run_history(run_id)
    assert after[: len(before)] == before
    assert [(e.kind, e.actor) for e in after[len(before) :]] == [
        ("wait.refused", "bob"),
        ("wait.refused", "carol"),
    ]
    now = run_rows()
    for table in set(now) - {"ravel_runs", "ravel_audit"}:  # the run row holds the chain head
        assert now[table] == snapshot.before[table], table
    run = get_run(run_id)
    assert (run.status, run.wait.id, run.seq, run.state) == ("waiting", wait_id, 1, {})


def test_the_body_cannot_say_who_decides(api, inline, unchanged):
    run_id, wait_id = parked(api, inline, approval_flow(["alice"]))
    snapshot = unchanged()
    for extra in ({"actor": "alice"}, {"groups": ["finance"]}, {"principal": "alice"}):
        response = api.post(
            f"/runs/{run_id}/approve", json={"wait_id": wait_id, **extra}, who="bob"
        )
        error(response, 400, "unknown_field", repr(next(iter(extra))), "data, wait_id")
    snapshot.check()


def test_a_decision_needs_the_wait_id_the_caller_saw(api, inline, unchanged):
    run_id, wait_id = parked(api, inline, approval_flow(["group:finance"]))
    snapshot = unchanged()
    error(
        api.post(f"/runs/{run_id}/approve", json={}, who="alice"), 400, "missing_field", "wait_id"
    )
    error(api.post(f"/runs/{run_id}/approve", who="alice"), 400, "missing_field", "wait_id")
    error(
        api.post(f"/runs/{run_id}/approve", json={"wait_id": "nope"}, who="alice"),
        400,
        "invalid_field",
        "wait_id",
        "run.wait.id",
    )
    error(
        api.post(f"/runs/{run_id}/approve", json={"wait_id": 42}, who="alice"),
        400,
        "invalid_field",
        "wait_id",
    )
    stale = str(uuid.uuid4())
    error(
        api.post(f"/runs/{run_id}/approve", json={"wait_id": stale}, who="alice"),
        409,
        "wait_not_found",
        "stale",
    )
    error(
        api.post(f"/runs/{run_id}/approve", json={"wait_id": wait_id, "data": "yes"}, who="alice"),
        400,
        "invalid_field",
        "data",
    )
    error(
        api.post(f"/runs/{run_id}/reject", json={"wait_id": wait_id, "reason": {}}, who="alice"),
        400,
        "invalid_field",
        "reason",
    )
    snapshot.check()


def test_a_replayed_approval_never_decides_a_newer_wait(api, inline):
    flow = approval_flow(["group:finance"])
    run_id, first = parked(api, inline, flow)
    assert (
        api.post(f"/runs/{run_id}/approve", json={"wait_id": first}, who="alice").status_code == 200
    )
    inline.drain()
    # A run of the same workflow again: the replay of the old request names the old wait.
    other, second = parked(api, inline, flow)
    replay = api.post(f"/runs/{run_id}/approve", json={"wait_id": first}, who="alice")
    assert replay.status_code == 200 and replay.get_json()["wait_id"] == first
    assert get_run(other).wait.id == second and get_run(other).status == "waiting"
    error(
        api.post(f"/runs/{other}/approve", json={"wait_id": first}, who="alice"),
        409,
        "wait_not_found",
    )


def test_deciding_a_run_that_waits_for_nothing_is_409(api, inline, unchanged):
    done = start(api, done_flow())
    inline.drain()
    snapshot = unchanged()
    error(
        api.post(f"/runs/{done}/approve", json={"wait_id": str(uuid.uuid4())}, who="alice"),
        409,
        "wait_not_found",
    )
    error(
        api.post(
            "/runs/0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10/approve",
            json={"wait_id": str(uuid.uuid4())},
            who="alice",
        ),
        404,
        "run_not_found",
    )
    error(
        api.post("/runs/nope/reject", json={"wait_id": str(uuid.uuid4())}, who="alice"),
        404,
        "run_not_found",
    )
    snapshot.check()


def test_an_expired_approval_is_409_and_the_run_goes_on_as_expired(api, inline):
    run_id, wait_id = parked(api, inline, approval_flow(["alice"], timeout=timedelta(0)))
    error(
        api.post(f"/runs/{run_id}/approve", json={"wait_id": wait_id}, who="alice"),
        409,
        "wait_expired",
        "expired",
    )
    inline.drain()
    assert get_run(run_id).result["decision"] == "expired"
