"""Slack's buttons: a click signed by Slack decides once, as the mapped person and groups;
anything unsigned, altered, stale or from someone who may not decide changes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import approve, get_run, run_history
from pipeline.slack import outbox
from pipeline.testing.inline import InlineDispatcher
from pipeline.web import create_app
from tests.integration.web.slack_support import (
    SECRET,
    Slack,
    approval_flow,
    park,
    settle,
    slack_env,
)
from tests.support.db_state import run_rows
from tests.support.slack_stub import SlackStub, signed


@pytest.fixture
def slack(
    any_db: str, tmp_path: Path, inline: InlineDispatcher, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Slack]:
    with SlackStub() as stub:
        slack_env(monkeypatch, stub, tmp_path)
        monkeypatch.delenv("SLACK_BOT_TOKEN")  # these tests click; nothing is posted
        try:
            yield Slack(stub, create_app().test_client(), inline)
        finally:
            outbox.stop_courier()


def _kinds(run_id: str) -> list[str]:
    return [e.kind for e in run_history(run_id)]


def test_a_signed_click_decides_once_as_the_mapped_person_and_updates_the_message(slack):
    run_id, wait_id = park(slack.inline, approval_flow(["group:finance"]))
    started = time.monotonic()
    response = slack.click(wait_id, "UALICE")
    assert response.status_code == 200 and response.get_data() == b""
    assert time.monotonic() - started < 3  # Slack's limit for the answer
    update = slack.responses("r1")[0]
    assert update["replace_original"] is True
    assert update["text"].startswith("Approved by alice (as group:finance) at ")
    assert all(b["type"] != "actions" for b in update["blocks"])  # the buttons are gone
    assert update["blocks"][0]["text"]["text"] == "Refund 250?"  # the question stays
    slack.inline.drain()
    assert get_run(run_id).result == {
        "decision": "approved",
        "actor": "alice",
        "principal": "group:finance",
    }
    approved = [e for e in run_history(run_id) if e.kind == "wait.approved"]
    assert [(e.actor, e.data["as"]) for e in approved] == [("alice", "group:finance")]


def test_a_replayed_click_is_idempotent(slack):
    run_id, wait_id = park(slack.inline, approval_flow(["alice"]))
    body, headers = signed(SECRET, slack.payload(wait_id, "UALICE", "ravel_reject"))
    assert slack.send(body, headers).status_code == 200
    assert slack.send(body, headers).status_code == 200  # the same signed request again
    replies = slack.responses("r1", 2)
    assert [r["text"].split(" at ")[0] for r in replies] == ["Rejected by alice"] * 2
    assert _kinds(run_id).count("wait.rejected") == 1
    assert "wait.approved" not in _kinds(run_id)


BAD_REQUESTS = {
    "no signature": lambda s, w: (signed(SECRET, s.payload(w))[0], {}),
    "another secret": lambda s, w: signed("not-the-secret", s.payload(w)),
    "stale timestamp": lambda s, w: signed(SECRET, s.payload(w), int(time.time()) - 301),
    "future timestamp": lambda s, w: signed(SECRET, s.payload(w), int(time.time()) + 301),
    "non-numeric timestamp": lambda s, w: signed(SECRET, s.payload(w), "12e9"),
    "empty timestamp": lambda s, w: signed(SECRET, s.payload(w), ""),
    "huge timestamp": lambda s, w: signed(SECRET, s.payload(w), "9" * 5000),
    # Signed as bob (who may not decide), then the user id changed to alice's.
    "tampered body": lambda s, w: (
        signed(SECRET, s.payload(w, "UBOB"))[0].replace(b"UBOB", b"UALICE"),
        signed(SECRET, s.payload(w, "UBOB"))[1],
    ),
    "re-encoded body": lambda s, w: (
        signed(SECRET, s.payload(w))[0].replace(b"%22", b"%22%20", 1),
        signed(SECRET, s.payload(w))[1],
    ),
}


def test_unverifiable_requests_are_refused_and_change_nothing(slack):
    run_id, wait_id = park(slack.inline, approval_flow(["alice"]))
    before = run_rows()
    for case, make in BAD_REQUESTS.items():
        body, headers = make(slack, wait_id)
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        response = slack.send(body, headers)
        assert response.status_code == 401, (case, response.get_data(as_text=True))
        assert response.get_json()["error"] == "unauthorized", case
    assert run_rows() == before and get_run(run_id).status == "waiting"
    settle(0.1)
    assert slack.stub.received == []


def test_an_unmapped_user_or_another_workspace_is_refused_and_the_run_stays_parked(slack):
    run_id, wait_id = park(slack.inline, approval_flow(["alice", "group:finance"]))
    before = run_rows()
    assert slack.click(wait_id, "UEVE", response="eve").status_code == 200
    assert slack.click(wait_id, "UALICE", team="TOTHER", response="other").status_code == 200
    for name, who in (("eve", "UEVE"), ("other", "UALICE")):
        reply = slack.responses(name)[0]
        assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
        assert f"({who}) is not mapped" in reply["text"]
    assert run_rows() == before and get_run(run_id).status == "waiting"


def test_a_mapped_user_who_is_not_an_approver_is_refused_audited_and_the_run_stays_parked(slack):
    run_id, wait_id = park(slack.inline, approval_flow(["group:finance"]))
    assert slack.click(wait_id, "UBOB").status_code == 200
    reply = slack.responses("r1")[0]
    assert reply["response_type"] == "ephemeral"
    assert "You may not decide this approval" in reply["text"] and "'bob'" in reply["text"]
    assert get_run(run_id).status == "waiting" and get_run(run_id).wait.id == wait_id
    refused = [e for e in run_history(run_id) if e.kind == "wait.refused"]
    assert [(e.actor, e.data["wait_id"]) for e in refused] == [("bob", wait_id)]


def test_the_button_of_an_earlier_wait_never_decides_the_next_one(slack):
    run_id, first = park(slack.inline, approval_flow(["alice"], then_again=True))
    approve(run_id, "alice", wait_id=first)
    slack.inline.drain()
    second = get_run(run_id).wait.id
    assert second != first
    assert slack.click(first, "UALICE", "ravel_reject").status_code == 200
    reply = slack.responses("r1")[0]
    assert reply["replace_original"] is True and reply["text"].startswith("This approval is closed")
    assert get_run(run_id).status == "waiting" and get_run(run_id).wait.id == second
    assert "wait.rejected" not in _kinds(run_id)


def test_without_a_signing_secret_the_endpoint_answers_503(slack, monkeypatch):
    run_id, wait_id = park(slack.inline, approval_flow(["alice"]))
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    response = slack.click(wait_id)
    assert response.status_code == 503
    assert "SLACK_SIGNING_SECRET" in response.get_json()["message"]
    assert get_run(run_id).status == "waiting"
