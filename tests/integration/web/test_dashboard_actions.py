"""Decisions and operator actions from the dashboard: each form first shows what will be done
and changes nothing; the confirmed form acts as the signed-in principal, audited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from pipeline import Done, Next, Workflow, get_run, run_history, start_run
from pipeline.testing.inline import InlineDispatcher
from tests.integration._engine_support import unique
from tests.integration.web.dashboard_support import Browser, build_app, hidden
from tests.integration.web.support import Unchanged, approval_flow, fragile_flow

App = tuple[Flask, dict[str, str], Path]


@pytest.fixture
def dash(sqlite_db: str, tmp_path: Path, inline: InlineDispatcher) -> Iterator[App]:
    yield build_app(tmp_path)


def _events(run_id: str, kind: str) -> list[tuple[str, dict[str, object]]]:
    return [(e.actor, e.data) for e in run_history(run_id) if e.kind == kind]


def test_an_approver_confirms_the_wait_shown_and_decides_as_her_group(
    dash: App, inline: InlineDispatcher
) -> None:
    app, secrets, _ = dash
    run_id = start_run(approval_flow(["group:finance"]), {"amount": 980})
    inline.drain()
    alice = Browser(app, secrets["alice"]).signed_in()
    listed = alice.html("/ui/approvals")
    assert f'data-run-id="{run_id}"' in listed and "Refund 980?" in listed
    wait_id = hidden(listed, "wait_id")
    assert wait_id == get_run(run_id).wait.id  # type: ignore[union-attr]

    unchanged = Unchanged()
    asked = alice.post(
        f"/ui/runs/{run_id}/approve", wait_id=wait_id, note="ok by me", back="approvals"
    )
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Approve this approval?" in page
    assert "group:finance" in page and "Refund 980?" in page and "ok by me" in page
    assert hidden(page, "wait_id") == wait_id and hidden(page, "confirm") == "yes"
    unchanged.check()  # the first POST only asks

    done = alice.post(
        f"/ui/runs/{run_id}/approve",
        wait_id=wait_id,
        note="ok by me",
        back="approvals",
        confirm="yes",
    )
    assert (done.status_code, done.headers["Location"]) == (303, "/ui/approvals")
    assert "Approved as group:finance." in alice.html("/ui/approvals")
    inline.drain()
    run = get_run(run_id)
    assert run.status == "succeeded"
    assert run.result["principal"] == "group:finance"
    assert run.result["data"] == {"note": "ok by me"}
    assert _events(run_id, "wait.approved")[0][0] == "alice"

    # The wait shown is gone: a stale screen decides nothing.
    again = alice.post(f"/ui/runs/{run_id}/reject", wait_id=wait_id, reason="late")
    assert again.status_code == 409 and "no longer open" in again.get_data(as_text=True)


def test_a_person_outside_the_approvers_is_refused_and_the_refusal_audited(
    dash: App, inline: InlineDispatcher
) -> None:
    app, secrets, _ = dash
    run_id = start_run(approval_flow(["group:finance"]), {})
    inline.drain()
    bob = Browser(app, secrets["bob"]).signed_in()
    wait_id = get_run(run_id).wait.id  # type: ignore[union-attr]
    asked = bob.post(f"/ui/runs/{run_id}/reject", wait_id=wait_id, reason="no")
    assert "not an approver: Ravel will refuse" in asked.get_data(as_text=True)
    refused = bob.post(f"/ui/runs/{run_id}/reject", wait_id=wait_id, reason="no", confirm="yes")
    assert refused.status_code == 403
    assert "not_authorized" in refused.get_data(as_text=True)
    assert get_run(run_id).status == "waiting"
    assert [actor for actor, _ in _events(run_id, "wait.refused")] == ["bob"]


def test_an_operator_retries_a_failed_run_with_a_patch_edited_as_json(
    dash: App, inline: InlineDispatcher
) -> None:
    app, secrets, _ = dash
    run_id = start_run(fragile_flow(), {"order": 7})
    inline.drain()
    assert get_run(run_id).status == "failed"
    ops = Browser(app, secrets["ops"]).signed_in()
    unchanged = Unchanged()
    for text, why in (
        ("{bad", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"x": NaN}', "not valid JSON"),
    ):
        shown = ops.post(f"/ui/runs/{run_id}/retry", patch=text)
        page = shown.get_data(as_text=True)
        assert shown.status_code == 400 and why in page, text
        assert '<textarea id="patch"' in page  # the patch is shown again, to fix
    assert ops.post(f"/ui/runs/{run_id}/retry", patch="{bad", confirm="yes").status_code == 400
    unchanged.check()

    asked = ops.post(f"/ui/runs/{run_id}/retry", patch='{"fixed": "by ops"}')
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Retry this run?" in page and "by ops" in page
    patch = hidden(page, "patch")
    assert json.loads(patch.replace("&#34;", '"')) == {"fixed": "by ops"}
    unchanged.check()
    done = ops.post(f"/ui/runs/{run_id}/retry", patch='{"fixed": "by ops"}', confirm="yes")
    assert done.status_code == 303 and done.headers["Location"] == f"/ui/runs/{run_id}"
    inline.drain()
    assert get_run(run_id).result == {"fixed": "by ops"}
    [(actor, data)] = _events(run_id, "run.retried")
    assert actor == "ops" and data["patched_keys"] == ["fixed"]
    # The timeline shows the patch between the two attempts of the step.
    timeline = ops.html(f"/ui/runs/{run_id}")
    assert "an operator's patch" in timeline and "by ops" in timeline
    assert "returned Fail: not fixed yet" in timeline


def test_an_operator_cancels_with_a_reason_and_forks_with_a_patch(
    dash: App, inline: InlineDispatcher
) -> None:
    app, secrets, _ = dash
    waiting = start_run(approval_flow(["group:finance"]), {})
    flow = Workflow(unique("dash_fork"))

    @flow.step(start=True)
    def pick(ctx):  # type: ignore[no-untyped-def]
        ctx.state["vendor"] = ctx.state.get("vendor") or "acme"
        return Next("buy")

    @flow.step
    def buy(ctx):  # type: ignore[no-untyped-def]
        return Done({"bought_from": ctx.state["vendor"]})

    done = start_run(flow.name, {})
    inline.drain()
    carol = Browser(app, secrets["carol"]).signed_in()
    asked = carol.post(f"/ui/runs/{waiting}/cancel", reason="duplicate request")
    assert "Cancel this run?" in asked.get_data(as_text=True)
    assert get_run(waiting).status == "waiting"
    cancelled = carol.post(f"/ui/runs/{waiting}/cancel", reason="duplicate request", confirm="yes")
    assert cancelled.status_code == 303
    assert get_run(waiting).status == "cancelled"
    assert [(a, d.get("reason")) for a, d in _events(waiting, "run.cancelled")] == [
        ("carol", "duplicate request")
    ]

    page = carol.html(f"/ui/runs/{done}")
    assert '<option value="1">1</option>' in page  # fork points: seq 0 and 1
    wrong = carol.post(f"/ui/runs/{done}/fork", seq="1", patch='{"vendor": 5}', confirm="yes")
    assert wrong.status_code == 422 and "type" in wrong.get_data(as_text=True)
    forked = carol.post(
        f"/ui/runs/{done}/fork", seq="1", patch='{"vendor": "globex"}', confirm="yes"
    )
    assert forked.status_code == 303
    fork_id = forked.headers["Location"].rsplit("/", 1)[1]
    inline.drain()
    fork = get_run(fork_id)
    assert (fork.forked_from, fork.forked_from_seq) == (done, 1)
    assert fork.result == {"bought_from": "globex"}
    assert _events(fork_id, "run.forked")[0][0] == "carol"
    assert fork_id[:8] in carol.html(f"/ui/runs/{done}")  # the original lists its fork
