"""``ravel approvals`` (list, approve, reject) and ``ravel events send``."""

from __future__ import annotations

import uuid

import click

from pipeline import api
from pipeline.cli.common import actor_option, json_option, parse_json, require_database
from pipeline.cli.output import echo_json, print_table, to_jsonable, when
from pipeline.views import RunView, WaitResult

# Approvals are checked against the wait's approvers: the actor is always explicit here, never
# taken from the environment or the OS user.
_approver = click.option(
    "--actor", required=True, help="The approver deciding (must be one of the wait's approvers)."
)
_wait_id = click.option(
    "--wait-id",
    metavar="ID",
    help="Decide only this wait (fails if the run's open wait is another).",
)


@click.group()
def approvals() -> None:
    """List and decide runs waiting for an approval."""


def _pending(workflow: str | None, limit: int) -> list[RunView]:
    waiting = api.list_runs(status="waiting", workflow=workflow, limit=limit)
    return [r for r in waiting if r.wait is not None and r.wait.kind == "approval"]


@approvals.command("list")
@click.option("--workflow", help="Only runs of this workflow.")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=200,
    show_default=True,
    help="Look at most at this many waiting runs, newest first.",
)
@json_option
def list_approvals(workflow: str | None, limit: int, as_json: bool) -> None:
    """List runs waiting for an approval."""
    require_database()
    found = _pending(workflow, limit)
    if as_json:
        echo_json(
            [
                {"run_id": r.id, "workflow": r.workflow, "step": r.step, "wait": r.wait}
                for r in found
            ]
        )
        return
    rows = []
    for r in found:
        assert r.wait is not None
        rows.append(
            (
                r.id,
                r.workflow,
                r.wait.prompt,
                ", ".join(r.wait.approvers),
                when(r.wait.expires_at),
                r.wait.id,
            )
        )
    print_table(
        ["run", "workflow", "prompt", "approvers", "expires", "wait id"],
        rows,
        empty="no run is waiting for an approval",
        no_wrap=("run", "wait id"),
    )


def _canonical(run_id: str) -> str:
    """The run id as stored (the API accepted it, so it is a UUID)."""
    return str(uuid.UUID(run_id))


def _report(run_id: str, result: WaitResult, as_json: bool) -> None:
    if as_json:
        echo_json({"run_id": run_id, **to_jsonable(result)})
        return
    click.echo(f"run {run_id}: approval {result.wait_id} {result.decision} by {result.actor}")


@approvals.command()
@click.argument("run_id", metavar="RUN")
@_approver
@click.option(
    "--data",
    "data_text",
    metavar="JSON",
    help="Data for the step after the wait, a JSON object, e.g. '{\"limit\": 500}'.",
)
@_wait_id
@json_option
def approve(
    run_id: str, actor: str, data_text: str | None, wait_id: str | None, as_json: bool
) -> None:
    """Approve the run's open approval; the run goes on at the wait's next step."""
    data = None if data_text is None else parse_json(data_text, "--data", want_object=True)
    require_database()
    result = api.approve(run_id, actor, data, wait_id=wait_id)
    _report(_canonical(run_id), result, as_json)


@approvals.command()
@click.argument("run_id", metavar="RUN")
@_approver
@click.option("--reason", help="Why; the step after the wait sees it as the decision data.")
@_wait_id
@json_option
def reject(run_id: str, actor: str, reason: str | None, wait_id: str | None, as_json: bool) -> None:
    """Reject the run's open approval; the step after the wait sees "rejected"."""
    require_database()
    result = api.reject(run_id, actor, reason, wait_id=wait_id)
    _report(_canonical(run_id), result, as_json)


@click.group()
def events() -> None:
    """Send events to runs."""


@events.command()
@click.argument("run_id", metavar="RUN")
@click.argument("name")
@click.option(
    "--payload",
    "payload_text",
    metavar="JSON",
    help="The event's payload, any JSON value (default: null).",
)
@actor_option
@json_option
def send(run_id: str, name: str, payload_text: str | None, actor: str, as_json: bool) -> None:
    """Send the event NAME to a run: it wakes a run waiting for it, or is kept until then."""
    payload = None if payload_text is None else parse_json(payload_text, "--payload")
    require_database()
    woke = api.send_event(run_id, name, payload, actor=actor)
    run_id = _canonical(run_id)
    if as_json:
        echo_json({"run_id": run_id, "event": name, "delivered": woke})
        return
    if woke:
        click.echo(f"event {name!r} delivered to run {run_id}; the run resumes")
    else:
        click.echo(
            f"event {name!r} kept for run {run_id}; it is delivered when the run waits for it"
        )
