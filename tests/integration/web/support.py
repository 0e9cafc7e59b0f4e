"""Helpers of the HTTP API tests: a client with a key per caller, error checks, workflows."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from pipeline import (
    Done,
    Fail,
    RetryPolicy,
    WaitForApproval,
    WaitForEvent,
    Workflow,
    get_run,
    run_history,
)
from pipeline.testing.inline import InlineDispatcher
from tests.integration._engine_support import unique
from tests.support.db_state import run_rows

#: name -> (principal, role, groups)
KEYS = {
    "viewer": ("vera", "viewer", []),
    "alice": ("alice", "approver", ["finance"]),
    "bob": ("bob", "approver", []),
    "ops": ("ops", "operator", []),
    "carol": ("carol", "operator", ["legal"]),
}


class Api:
    """The test client with a key per caller: ``api.post("/runs", json=..., who="ops")``."""

    def __init__(self, app: Flask, secrets: dict[str, str], keys_path: Path) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self.secrets = secrets
        self.keys_path = keys_path

    def call(
        self,
        method: str,
        path: str,
        *,
        who: str | None = "ops",
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> TestResponse:
        sent = dict(headers or {})
        if who is not None:
            sent.setdefault("Authorization", f"Bearer {self.secrets[who]}")
        return self.client.open(path, method=method, headers=sent, **kwargs)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("POST", path, **kwargs)

    def raw(
        self, path: str, data: bytes | str, content_type: str = "application/json", **kwargs: Any
    ) -> TestResponse:
        return self.call("POST", path, data=data, content_type=content_type, **kwargs)


def error(response: TestResponse, status: int, code: str, *words: str) -> str:
    """Assert a JSON error with this status and code whose message has ``words``."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    found = response.get_json()
    assert found["error"] == code, found
    message: str = found["message"]
    for word in words:
        assert word in message, message
    assert "Traceback" not in message and "\n" not in message
    return message


class Unchanged:
    """Snapshot the run tables; ``check()`` asserts nothing was written since."""

    def __init__(self) -> None:
        self.before = run_rows()

    def check(self) -> None:
        assert run_rows() == self.before


# -- workflows -----------------------------------------------------------------------------


def approval_flow(approvers: list[str], *, timeout: timedelta | None = None) -> str:
    """``ask`` parks on an approval; ``after`` reports how it ended."""
    name = unique("http_approval")
    flow = Workflow(name)

    @flow.step(start=True)
    def ask(ctx):
        return WaitForApproval(
            f"Refund {ctx.state.get('amount', 250)}?",
            approvers=approvers,
            timeout=timeout,
            then="after",
        )

    @flow.step
    def after(ctx):
        wr = ctx.wait_result
        return Done(
            {"decision": wr.decision, "actor": wr.actor, "principal": wr.principal, "data": wr.data}
        )

    return name


def event_flow() -> str:
    """``wait`` parks on the event ``paid``; ``after`` returns its payload."""
    name = unique("http_event")
    flow = Workflow(name)

    @flow.step(start=True)
    def wait(ctx):
        return WaitForEvent("paid", timeout=timedelta(days=1), then="after")

    @flow.step
    def after(ctx):
        return Done({"payload": ctx.wait_result.data})

    return name


def fragile_flow() -> str:
    """Fails until the state holds ``fixed``: a run to retry with a state patch."""
    name = unique("http_fragile")
    flow = Workflow(name)

    @flow.step(start=True, retry=RetryPolicy(max_attempts=1))
    def work(ctx):
        if not ctx.state.get("fixed"):
            return Fail("not fixed yet")
        return Done({"fixed": ctx.state["fixed"]})

    return name


def done_flow() -> str:
    """Finishes at once with its input."""
    name = unique("http_done")
    flow = Workflow(name)

    @flow.step(start=True)
    def only(ctx):
        return Done(dict(ctx.state))

    return name


def start(api: Api, workflow: str, data: dict[str, Any] | None = None, **kwargs: Any) -> str:
    response = api.post("/runs", json={"workflow": workflow, "input": data or {}}, **kwargs)
    assert response.status_code == 201, response.get_json()
    run_id: str = response.get_json()["id"]
    return run_id


def parked(
    api: Api, inline: InlineDispatcher, workflow: str, data: dict[str, Any] | None = None
) -> tuple[str, str]:
    """A run of ``workflow`` parked on its wait: (run id, wait id)."""
    run_id = start(api, workflow, data)
    inline.drain()
    run = get_run(run_id)
    assert run.status == "waiting" and run.wait is not None
    return run_id, run.wait.id


def kinds(run_id: str) -> list[str]:
    return [e.kind for e in run_history(run_id)]


def dumps(value: Any) -> str:
    return json.dumps(value)
