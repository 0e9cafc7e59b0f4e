"""Slack approval messages: posted after the park commits, in the background, retried, and
never twice for one wait (also when a worker dies before queueing it or while posting)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import get_run, notify
from pipeline.slack import outbox
from pipeline.store import get_db, slack_outbox
from pipeline.testing.inline import InlineDispatcher
from pipeline.web import create_app
from tests.integration.web.slack_support import (
    CHANNEL,
    Slack,
    approval_flow,
    park,
    settle,
    slack_env,
)
from tests.support.slack_stub import SlackStub


@pytest.fixture
def slack(
    any_db: str, tmp_path: Path, inline: InlineDispatcher, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Slack]:
    with SlackStub() as stub:
        slack_env(monkeypatch, stub, tmp_path)
        # The handler is registered for this test only (other tests' parks skip it).
        monkeypatch.setattr(notify, "_handlers", list(notify._handlers))
        monkeypatch.setattr(outbox, "_installed", False)
        assert outbox.install()
        try:
            yield Slack(stub, create_app().test_client(), inline)
        finally:
            outbox.stop_courier()


def _row(wait_id: str) -> slack_outbox.OutboxEntry:
    row = slack_outbox.entry(get_db(), wait_id)
    assert row is not None
    return row


def _shown(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_a_parked_run_posts_one_message_with_the_proposed_call_and_buttons(slack):
    flow = approval_flow(
        ["group:finance"],
        prompt="Pay <!channel> & <https://evil|Approve>?",
        data={"tool": "pay_invoice", "arguments": {"amount": 250, "to": "ACME"}},
    )
    run_id, wait_id = park(slack.inline, flow)
    posts = slack.stub.wait_for("/chat.postMessage", 1)
    assert len(posts) == 1
    post = posts[0]
    assert post.headers["Authorization"] == "Bearer xoxb-test-token"
    assert post.body["channel"] == CHANNEL and run_id in post.body["text"]
    blocks = post.body["blocks"]
    shown = _shown(blocks)
    # The model's text is inert: no channel mention, no disguised link.
    assert "&lt;!channel&gt; &amp; &lt;https://evil|Approve&gt;" in shown
    assert "<!channel>" not in shown and "<https://evil" not in shown
    assert "pay_invoice" in shown and '\\"amount\\": 250' in shown and "ACME" in shown
    assert f"<https://ops.example.com/ravel/ui/runs/{run_id}|{run_id}>" in shown
    assert "*Asked by:*\\napi" in shown and "group:finance" in shown
    assert "<!date^" in shown  # the deadline, shown in each reader's time zone
    buttons = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("ravel_approve", wait_id),
        ("ravel_reject", wait_id),
    ]
    assert post.body["metadata"]["event_payload"] == {"run_id": run_id, "wait_id": wait_id}
    # Another pass with the sweep, and the handler called again: still one message.
    outbox.Courier(sweep=True).pass_once()
    outbox.queue_message(get_run(run_id))
    settle()
    assert len(slack.stub.posts()) == 1
    row = _row(wait_id)
    assert (row.status, row.attempts, row.channel) == ("sent", 1, CHANNEL) and row.ts
    assert get_run(run_id).status == "waiting"


def test_a_failed_post_is_retried_in_the_background_and_posts_once(slack):
    slack.stub.fail_next(1, status=500)
    slack.stub.fail_next(1, status=200, answer={"ok": False, "error": "ratelimited"})
    run_id, wait_id = park(slack.inline, approval_flow(["alice"]))
    assert get_run(run_id).status == "waiting"  # the park never waited for Slack
    calls = slack.stub.wait_for("/chat.postMessage", 3)
    settle()
    assert len(slack.stub.posts()) == 3  # two refused, one accepted, no fourth
    row = _row(wait_id)
    assert (row.status, row.attempts) == ("sent", 3)
    assert all(c.body["blocks"] == calls[0].body["blocks"] for c in calls)


def test_slack_down_fails_no_step_and_the_message_waits_for_a_retry(slack, monkeypatch):
    monkeypatch.setenv("RAVEL_SLACK_API_URL", "http://127.0.0.1:9/api/")  # nothing listens
    monkeypatch.setattr(outbox, "RETRY_BASE_SECONDS", 60.0)
    started = time.monotonic()
    run_id, wait_id = park(slack.inline, approval_flow(["alice"]))
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while _row(wait_id).attempts == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    settle(0.2)
    row = _row(wait_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error and "Error" in row.last_error
    assert get_run(run_id).status == "waiting" and slack.stub.posts() == []


def test_a_worker_that_died_before_queueing_or_while_posting_still_posts_once(slack, monkeypatch):
    # Died between the park's commit and queueing the message: no row at all.
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    lost, lost_wait = park(slack.inline, approval_flow(["alice"]))
    # Died while posting: the row is claimed, and its claim runs out.
    claimed, claimed_wait = park(slack.inline, approval_flow(["alice"]))
    slack_outbox.add(get_db(), claimed_wait, claimed)
    assert [c.wait_id for c in slack_outbox.claim_due(get_db(), lease_seconds=0.5)] == [
        claimed_wait
    ]
    assert slack_outbox.entry(get_db(), lost_wait) is None
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    courier = outbox.Courier(sweep=True)
    courier.pass_once()  # the sweep queues the lost one; the claimed one is not due yet
    assert [p.body["metadata"]["event_payload"]["run_id"] for p in slack.stub.posts()] == [lost]
    time.sleep(0.6)
    courier.pass_once()
    courier.pass_once()
    posted = [p.body["metadata"]["event_payload"]["run_id"] for p in slack.stub.posts()]
    assert posted == [lost, claimed]
    assert _row(lost_wait).status == _row(claimed_wait).status == "sent"


def test_a_wait_decided_before_it_was_posted_is_not_posted(slack, monkeypatch):
    from pipeline import approve

    monkeypatch.delenv("SLACK_BOT_TOKEN")
    run_id, wait_id = park(slack.inline, approval_flow(["alice"]))
    slack_outbox.add(get_db(), wait_id, run_id)
    approve(run_id, "alice", wait_id=wait_id)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    outbox.Courier().pass_once()
    assert slack.stub.posts() == []
    assert _row(wait_id).status == "dropped"
