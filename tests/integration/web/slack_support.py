"""Helpers of the Slack tests: Slack settings pointing at the local stub, users, clicks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from pipeline import Done, WaitForApproval, Workflow, get_run, start_run
from pipeline.slack import outbox
from pipeline.testing.inline import InlineDispatcher
from tests.integration._engine_support import unique
from tests.support.slack_stub import SlackStub, signed

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0APPROVALS"
TEAM = "T0RAVEL"
USERS = f"""
team_id = "{TEAM}"

[users.UALICE]
principal = "alice"
groups = ["finance"]

[users.UBOB]
principal = "bob"
"""


@dataclass
class Slack:
    """The stub, an app with the interactivity endpoint, and the inline dispatcher."""

    stub: SlackStub
    client: FlaskClient
    inline: InlineDispatcher

    def click(
        self,
        wait_id: str,
        user: str = "UALICE",
        action: str = "ravel_approve",
        *,
        team: str = TEAM,
        secret: str = SECRET,
        timestamp: int | str | None = None,
        response: str = "r1",
    ) -> TestResponse:
        body, headers = signed(
            secret, self.payload(wait_id, user, action, team, response), timestamp
        )
        return self.send(body, headers)

    def payload(
        self,
        wait_id: str,
        user: str = "UALICE",
        action: str = "ravel_approve",
        team: str = TEAM,
        response: str = "r1",
    ) -> dict[str, Any]:
        return {
            "type": "block_actions",
            "user": {"id": user, "team_id": team},
            "team": {"id": team},
            "response_url": self.stub.response_url(response),
            "message": {
                "blocks": [
                    {
                        "type": "section",
                        "block_id": "q",
                        "text": {"type": "mrkdwn", "text": "Refund 250?"},
                    },
                    {"type": "actions", "block_id": "ravel_decision", "elements": []},
                ]
            },
            "actions": [
                {
                    "action_id": action,
                    "block_id": "ravel_decision",
                    "value": wait_id,
                    "type": "button",
                }
            ],
        }

    def send(self, body: bytes, headers: dict[str, str]) -> TestResponse:
        return self.client.post("/slack/actions", data=body, headers=headers)

    def responses(self, name: str = "r1", count: int = 1) -> list[dict[str, Any]]:
        return [r.body for r in self.stub.wait_for(f"/respond/{name}", count)]


def slack_env(monkeypatch: pytest.MonkeyPatch, stub: SlackStub, tmp_path: Path) -> None:
    users = tmp_path / "slack-users.toml"
    users.write_text(USERS)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "RAVEL_SLACK_CHANNEL": CHANNEL,
        "SLACK_SIGNING_SECRET": SECRET,
        "RAVEL_SLACK_API_URL": stub.api_url,
        "RAVEL_PUBLIC_URL": "https://ops.example.com/ravel/",
        "RAVEL_SLACK_USERS_FILE": str(users),
        "RAVEL_SLACK_TIMEOUT": "2",
    }.items():
        monkeypatch.setenv(name, value)
    # A failed post is retried at once here (2 s by default).
    monkeypatch.setattr(outbox, "RETRY_BASE_SECONDS", 0.05)


def approval_flow(
    approvers: list[str],
    data: dict[str, Any] | None = None,
    prompt: str = "Refund 250?",
    then_again: bool = False,
) -> str:
    """``ask`` parks on an approval (twice in a row with ``then_again``)."""
    name = unique("slack_approval")
    flow = Workflow(name)

    @flow.step(start=True)
    def ask(ctx):
        return WaitForApproval(
            prompt,
            approvers=approvers,
            timeout=timedelta(days=2),
            then="again" if then_again else "after",
            data=data,
        )

    @flow.step
    def again(ctx):
        return WaitForApproval("And again?", approvers=approvers, then="after")

    @flow.step
    def after(ctx):
        wr = ctx.wait_result
        return Done({"decision": wr.decision, "actor": wr.actor, "principal": wr.principal})

    return name


def park(
    inline: InlineDispatcher, workflow: str, data: dict[str, Any] | None = None
) -> tuple[str, str]:
    """A run of ``workflow`` parked on its approval: (run id, wait id)."""
    run_id = start_run(workflow, data or {})
    inline.drain()
    run = get_run(run_id)
    assert run.status == "waiting" and run.wait is not None
    return run_id, run.wait.id


def settle(seconds: float = 0.3) -> None:
    """Give background threads a moment (to show that nothing more arrives)."""
    time.sleep(seconds)
