"""``ravel runs``: list, show, history, retry, cancel."""

from __future__ import annotations

from typing import IO, Any

import click

from pipeline import api
from pipeline.cli.common import (
    actor_option,
    json_option,
    read_state_patch,
    require_database,
    state_patch_options,
)
from pipeline.cli.fork import fork_fields
from pipeline.cli.output import (
    compact,
    echo_json,
    money,
    print_fields,
    print_table,
    status_text,
    to_jsonable,
    when,
)
from pipeline.status import RunStatus
from pipeline.store import get_db
from pipeline.store import runs as run_store
from pipeline.views import HistoryEvent, RunView, StepView


@click.group()
def runs() -> None:
    """Watch and operate runs."""


@runs.command("list")
@click.option(
    "--status", type=click.Choice([s.value for s in RunStatus]), help="Only runs in this status."
)
@click.option("--workflow", help="Only runs of this workflow.")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="At most this many runs, newest first.",
)
@json_option
def list_runs(status: str | None, workflow: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    require_database()
    found = api.list_runs(status=status, workflow=workflow, limit=limit)
    if as_json:
        echo_json(found)
        return
    rows = [
        (
            r.id,
            r.workflow,
            status_text(r.status),
            r.step,
            r.attempt,
            r.tokens,
            money(r.cost_usd),
            when(r.updated_at),
        )
        for r in found
    ]
    print_table(
        ["id", "workflow", "status", "step", "attempt", "tokens", "cost", "updated"],
        rows,
        empty="no runs found",
        no_wrap=("id", "updated"),
    )


def _wait_fields(run: RunView) -> list[tuple[str, Any]]:
    wait = run.wait
    if wait is None:
        return []
    fields: list[tuple[str, Any]] = [("wait", f"{wait.kind} {wait.id}")]
    if wait.kind == "approval":
        fields += [("  prompt", wait.prompt), ("  approvers", ", ".join(wait.approvers) or "-")]
    else:
        fields.append(("  event", wait.name))
    fields += [
        ("  then", wait.then),
        ("  since", when(wait.created_at)),
        ("  expires", when(wait.expires_at)),
    ]
    if wait.data:
        fields.append(("  data", compact(wait.data)))
    return fields


def _waiting_for(run: RunView) -> list[tuple[str, Any]]:
    """What a pending run waits for when no worker serving its version was seen recently."""
    if run.status != RunStatus.PENDING:
        return []
    found = run_store.get_workflow(get_db(), run.workflow, run.workflow_version)
    if found is not None and found.fresh:
        return []  # queued for a worker that serves it
    seen = f"last seen {when(found.last_seen_at)}" if found is not None else "never seen"
    return [
        (
            "note",
            f"waiting for a worker: no worker serves {run.workflow} "
            f"v{run.workflow_version} ({seen})",
        )
    ]


#: one row of the steps table: an attempt with its number, or an operator's retry
Row = tuple[StepView, int] | HistoryEvent


def numbered(steps: list[StepView], history: list[HistoryEvent]) -> list[Row]:
    """Step attempts numbered as ``RunView.attempt`` and ``ctx.attempt`` count them.

    An attempt's number counts from 1 since the last operator retry of its step (the store
    keeps counting across retries). Operator retries (``run.retried``) come in between, as
    rows of their own, in the order things happened.
    """
    retries = sorted((e for e in history if e.kind == "run.retried"), key=lambda e: e.at)
    base: dict[int, int] = {}
    rows: list[Row] = []
    last: StepView | None = None
    for step in sorted(steps, key=lambda s: (s.finished_at, s.seq, s.attempt)):
        while retries and retries[0].at < step.finished_at:
            if last is not None:  # the retried step is the one whose attempt failed last
                base[last.seq] = last.attempt
            rows.append(retries.pop(0))
        rows.append((step, step.attempt - base.get(step.seq, 0)))
        last = step
    return rows + retries


def _last_failure(rows: list[Row]) -> tuple[StepView, int] | None:
    """The latest attempt, if it failed with a traceback (an exception, not ``Fail``)."""
    attempts = [r for r in rows if isinstance(r, tuple)]
    if attempts and attempts[-1][0].status == "failed" and attempts[-1][0].traceback:
        return attempts[-1]
    return None


def _aligned(pairs: list[tuple[str, Any]], width: int) -> list[tuple[str, Any]]:
    return [(name.ljust(width), value) for name, value in pairs]


def _show_text(run: RunView, rows: list[Row]) -> None:
    head: list[tuple[str, Any]] = [
        ("id", run.id),
        ("workflow", f"{run.workflow} (version {run.workflow_version})"),
        ("status", status_text(run.status)),
        *_waiting_for(run),
        ("step", f"{run.step} (seq {run.seq}, attempt {run.attempt})"),
        ("tokens", run.tokens),
        ("cost", money(run.cost_usd)),
        ("created", when(run.created_at)),
        ("updated", when(run.updated_at)),
        *fork_fields(run),
        *_wait_fields(run),
    ]
    if run.error:
        head.append(("error", run.error))
    failure = _last_failure(rows)
    if failure is not None:
        head.append(("traceback", f"of seq {failure[0].seq}, attempt {failure[1]}:"))
    tail: list[tuple[str, Any]] = []
    if run.result is not None:
        tail.append(("result", compact(run.result)))
    tail += [("input", compact(run.input)), ("state", compact(run.state))]
    width = max(len(name) for name, _ in head + tail)
    print_fields(_aligned(head, width))
    if failure is not None:
        # Under the error, as Python prints it, so that it reads (and copies) as usual.
        click.echo("\n".join("  " + line for line in str(failure[0].traceback).splitlines()))
    print_fields(_aligned(tail, width))
    click.echo()
    cells: list[tuple[Any, ...]] = []
    for row in rows:
        if isinstance(row, HistoryEvent):
            cells.append(
                (
                    None,
                    None,
                    row.step,
                    f"retried by {row.actor}",
                    None,
                    None,
                    None,
                    when(row.at),
                    None,
                )
            )
            continue
        s, attempt = row
        cells.append(
            (
                s.seq,
                attempt,
                s.step,
                s.status,
                s.outcome,
                s.worker,
                when(s.started_at),
                when(s.finished_at),
                s.error,
            )
        )
    print_table(
        ["seq", "attempt", "step", "status", "outcome", "worker", "started", "finished", "error"],
        cells,
        title="steps",
        empty="no step has run yet",
        no_wrap=("started", "finished"),
    )


@runs.command()
@click.argument("run_id", metavar="RUN")
@json_option
def show(run_id: str, as_json: bool) -> None:
    """Show everything about one run: status, open wait, state, result, step attempts."""
    require_database()
    run = api.get_run(run_id)
    rows = numbered(api.run_steps(run.id), api.run_history(run.id))
    if as_json:
        # Step attempts numbered as the run's own attempt, as the text shows them.
        steps = [{**to_jsonable(r[0]), "attempt": r[1]} for r in rows if isinstance(r, tuple)]
        echo_json({**to_jsonable(run), "steps": steps})
        return
    _show_text(run, rows)


@runs.command()
@click.argument("run_id", metavar="RUN")
@json_option
def history(run_id: str, as_json: bool) -> None:
    """Show the run's audit events, oldest first."""
    require_database()
    events = api.run_history(run_id)
    if as_json:
        echo_json(events)
        return
    rows = [
        (e.idx, when(e.at, millis=True), e.kind, e.actor, e.step, compact(e.data)) for e in events
    ]
    print_table(
        ["idx", "at", "kind", "actor", "step", "data"],
        rows,
        empty="no audit events",
        no_wrap=("at", "kind"),
    )


@runs.command()
@click.argument("run_id", metavar="RUN")
@actor_option
@state_patch_options
@json_option
def retry(
    run_id: str, actor: str, patch_text: str | None, patch_file: IO[str] | None, as_json: bool
) -> None:
    """Resume a failed run at the step that failed, optionally patching its state."""
    patch = read_state_patch(patch_text, patch_file)
    require_database()
    run = api.retry_run(run_id, actor, state_patch=patch)
    if as_json:
        echo_json(run)
        return
    patched = f"; state keys patched: {', '.join(sorted(patch))}" if patch else ""
    click.echo(
        f"run {run.id} will retry step {run.step} (attempt {run.attempt + 1} after the "
        f"retry), retried by {actor}{patched}"
    )


@runs.command()
@click.argument("run_id", metavar="RUN")
@actor_option
@click.option(
    "--reason", default="cancelled by operator", show_default=True, help="Why, for the audit log."
)
@json_option
def cancel(run_id: str, actor: str, reason: str, as_json: bool) -> None:
    """Cancel a live run (its open wait is closed, a running step's commit is discarded)."""
    require_database()
    run = api.cancel_run(run_id, actor, reason)
    if as_json:
        echo_json(run)
        return
    click.echo(f"run {run.id} is {run.status} ({run.error or reason})")
