"""Approvers are principals (people and groups); whoever may not decide is refused, even when
repeating a decision already made; a replayed decision never decides a newer wait."""

from __future__ import annotations

import pytest

from pipeline import (
    Done,
    NotAuthorized,
    WaitForApproval,
    Workflow,
    approve,
    get_run,
    reject,
    run_history,
    start_run,
)
from tests.integration._engine_support import kinds, unique


def _flow(approvers: list[str], *, twice: bool = False) -> str:
    name = unique("principals")
    flow = Workflow(name)

    @flow.step(start=True)
    def ask(ctx):
        return WaitForApproval(
            "Pay 900 EUR?", approvers=approvers, then="second" if twice else "after"
        )

    @flow.step
    def second(ctx):
        return WaitForApproval("Pay 900 EUR again?", approvers=approvers, then="after")

    @flow.step
    def after(ctx):
        wr = ctx.wait_result
        return Done({"decision": wr.decision, "actor": wr.actor, "principal": wr.principal})

    return name


def _parked(inline, name: str) -> str:
    rid = start_run(name, {})
    inline.drain()
    assert get_run(rid).status == "waiting"
    return rid


def test_a_member_of_a_named_group_decides_and_the_history_names_person_and_group(any_db, inline):
    rid = _parked(inline, _flow(["group:finance-director"]))
    result = approve(rid, "alice", groups=["finance-director"], wait_id=get_run(rid).wait.id)
    assert (result.actor, result.principal) == ("alice", "group:finance-director")
    inline.drain()

    assert get_run(rid).result == {
        "decision": "approved",
        "actor": "alice",
        "principal": "group:finance-director",
    }
    decided = next(e for e in run_history(rid) if e.kind == "wait.approved")
    assert decided.actor == "alice" and decided.data["as"] == "group:finance-director"


def test_a_named_user_matches_with_or_without_the_user_prefix(any_db, inline):
    for approvers, actor in ((["user:bob"], "bob"), (["bob"], "user:bob"), (["bob"], "bob")):
        rid = _parked(inline, _flow(approvers))
        assert approve(rid, actor).principal == approvers[0]


def test_groups_are_not_people_and_people_are_not_groups(any_db, inline):
    rid = _parked(inline, _flow(["group:finance"]))
    with pytest.raises(NotAuthorized, match="approvers are: group:finance"):
        approve(rid, "finance")  # a person named like the group is not its member
    rid2 = _parked(inline, _flow(["alice"]))
    with pytest.raises(NotAuthorized):
        approve(rid2, "mallory", groups=["alice"])  # a group named like the person
    assert get_run(rid).status == "waiting" and get_run(rid2).status == "waiting"


def test_a_non_approver_repeating_a_decision_already_made_is_refused_and_audited(any_db, inline):
    rid = _parked(inline, _flow(["alice"]))
    wait_id = get_run(rid).wait.id
    approve(rid, "alice", wait_id=wait_id)
    # While the run is pending after the decision, and after it finished.
    with pytest.raises(NotAuthorized):
        approve(rid, "mallory", wait_id=wait_id)
    inline.drain()
    assert get_run(rid).status == "succeeded"
    for call in (
        lambda: approve(rid, "mallory", wait_id=wait_id),
        lambda: approve(rid, "mallory"),
        lambda: reject(rid, "mallory", "no", wait_id=wait_id),
    ):
        with pytest.raises(NotAuthorized):
            call()
    refused = [e for e in run_history(rid) if e.kind == "wait.refused"]
    assert len(refused) == 4 and {e.actor for e in refused} == {"mallory"}
    assert all(e.data["wait_id"] == wait_id for e in refused)
    # The approver's own repeat is still an idempotent success.
    assert approve(rid, "alice", wait_id=wait_id).decision == "approved"
    assert kinds(rid).count("wait.approved") == 1


def test_a_replayed_decision_with_an_older_wait_id_never_decides_the_newer_wait(any_db, inline):
    rid = _parked(inline, _flow(["alice"], twice=True))
    first = get_run(rid).wait.id
    approve(rid, "alice", wait_id=first)
    inline.drain()
    second = get_run(rid).wait.id
    assert second != first

    replay = approve(rid, "alice", wait_id=first)  # the same request, delivered again
    assert replay.wait_id == first and replay.decision == "approved"
    run = get_run(rid)
    assert run.status == "waiting" and run.wait.id == second
    assert kinds(rid).count("wait.approved") == 1
