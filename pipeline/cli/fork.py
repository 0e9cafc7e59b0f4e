"""``ravel runs fork``: a new run from the checkpoint before one of a run's steps."""

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
from pipeline.cli.output import echo_json
from pipeline.store import forks, get_db
from pipeline.views import RunView


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "--from-step",
    "from_step",
    type=int,
    required=True,
    metavar="SEQ",
    help="The step seq to start at (the seq column of `ravel runs show`).",
)
@actor_option
@state_patch_options
@json_option
def fork(
    run_id: str,
    from_step: int,
    actor: str,
    patch_text: str | None,
    patch_file: IO[str] | None,
    as_json: bool,
) -> None:
    """Start a new run from the checkpoint before step seq SEQ of RUN (any status).

    The steps before SEQ are not run again: their LLM calls and effects are not paid again.
    The new run starts at once, on the original's workflow version.
    """
    patch = read_state_patch(patch_text, patch_file)
    require_database()
    new_id = api.fork_run(run_id, from_step, actor, state_patch=patch)
    run = api.get_run(new_id)
    if as_json:
        echo_json(run)
        return
    patched = f"; state keys patched: {', '.join(sorted(patch))}" if patch else ""
    click.echo(
        f"run {run.id} forked from run {run.forked_from} at step seq {from_step} "
        f"({run.step}), by {actor}{patched}"
    )


def fork_fields(run: RunView) -> list[tuple[str, Any]]:
    """Lines of ``ravel runs show`` on where a run was forked from and its forks."""
    fields: list[tuple[str, Any]] = []
    if run.forked_from is not None:
        fields.append(("forked from", f"{run.forked_from} at step seq {run.forked_from_seq}"))
    found = forks.forks_of(get_db(), run.id)
    if found:
        fields.append(("forks", ", ".join(f"{i} (from seq {s})" for i, s in found)))
    return fields
