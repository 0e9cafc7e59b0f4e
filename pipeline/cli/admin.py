"""``ravel db``, ``ravel audit verify`` and ``ravel workflows list``."""

from __future__ import annotations

import click

from pipeline import api, migrate
from pipeline.cli.common import json_option, require_database
from pipeline.cli.output import echo_json, print_table, when
from pipeline.migrate import sqlite_file
from pipeline.redact import mask_url
from pipeline.settings import get_settings
from pipeline.store import get_db, runs
from pipeline.store.db_errors import MIGRATE_HINT


@click.group()
def db() -> None:
    """Migrate the database (workers never migrate on their own)."""


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(revision: str) -> None:
    """Create or migrate Ravel's tables (all prefixed ravel_)."""
    url = get_settings().database_url
    before = _current(url)
    migrate.upgrade(url, revision)
    after = migrate.current(url)
    if before == after:
        click.echo(f"database at {mask_url(url)} is already at revision {after}")
    else:
        click.echo(
            f"database at {mask_url(url)} upgraded from {before or 'empty'} to revision {after}"
        )


def _current(url: str) -> str | None:
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return None  # do not create the file just to look at it
    return migrate.current(url)


@db.command()
@json_option
def current(as_json: bool) -> None:
    """Show the database's revision and the newest one this version of Ravel ships."""
    url = get_settings().database_url
    now, head = _current(url), migrate.head()
    if as_json:
        echo_json(
            {"database_url": mask_url(url), "current": now, "head": head, "up_to_date": now == head}
        )
        return
    if now is None:
        state = f"not migrated; {MIGRATE_HINT}"
    elif now == head:
        state = "up to date"
    else:
        state = f"behind; {MIGRATE_HINT}"
    click.echo(f"database at {mask_url(url)}: revision {now or '-'} (head {head}): {state}")


@click.group()
def audit() -> None:
    """Check the hash-chained audit log."""


@audit.command()
@click.argument("run_id", metavar="RUN")
@json_option
def verify(run_id: str, as_json: bool) -> None:
    """Re-compute the run's audit hash chain; exit 1 if any event was altered."""
    require_database()
    result = api.verify_audit(run_id)
    if as_json:
        echo_json(result)
    elif result.ok:
        click.echo(f"audit chain of run {result.run_id} verified: {result.events} events")
    else:
        click.echo(
            f"error: audit chain of run {result.run_id} is broken at event idx "
            f"{result.first_bad_idx}: {result.problem}",
            err=True,
        )
    if not result.ok:
        raise click.exceptions.Exit(1)


@click.group()
def workflows() -> None:
    """Workflows registered by workers (or by processes that started runs)."""


@workflows.command("list")
@json_option
def list_workflows(as_json: bool) -> None:
    """List every registered workflow version: start step, steps' queues, when last seen."""
    require_database()
    found = runs.list_workflows(get_db())
    if as_json:
        echo_json(
            [
                {
                    "name": w.name,
                    "version": w.version,
                    "start_step": w.start_step,
                    "steps": dict(w.steps),
                    "first_seen_at": w.first_seen_at,
                    "last_seen_at": w.last_seen_at,
                    "served_recently": w.fresh,
                }
                for w in found
            ]
        )
        return
    rows = [
        (
            w.name,
            w.version,
            w.start_step,
            ", ".join(f"{step} ({queue})" for step, queue in w.steps.items()),
            when(w.last_seen_at),
        )
        for w in found
    ]
    print_table(
        ["name", "version", "start", "steps (queue)", "last seen"],
        rows,
        empty="no workflow is registered; start a worker with RAVEL_WORKFLOWS set",
        no_wrap=("last seen",),
    )
