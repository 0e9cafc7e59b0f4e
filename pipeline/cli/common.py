"""Helpers shared by the commands: JSON arguments, the actor, the database check."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from typing import IO, Any, TypeVar

import click

from pipeline.cli.errors import CliError
from pipeline.migrate import sqlite_file
from pipeline.settings import get_settings
from pipeline.store.db_errors import MIGRATE_HINT

F = TypeVar("F", bound=Callable[..., Any])


def json_option(fn: F) -> F:
    """The ``--json`` flag: machine-readable output on stdout."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text."
    )(fn)


def default_actor() -> str:
    """``cli:<os user>``: who operates when neither ``--actor`` nor ``RAVEL_ACTOR`` says."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container
        user = "unknown"
    return f"cli:{user}"


def actor_option(fn: F) -> F:
    """``--actor`` for operator actions, defaulting to ``RAVEL_ACTOR`` or ``cli:<os user>``."""
    return click.option(
        "--actor",
        envvar="RAVEL_ACTOR",
        default=default_actor,
        show_envvar=True,
        show_default="cli:<os user>",
        help="Who does this, for the audit log.",
    )(fn)


def state_patch_options(fn: F) -> F:
    """``--patch JSON`` / ``--patch-file PATH``: keys to set in a run's state first."""
    fn = click.option(
        "--patch-file",
        type=click.File("r"),
        metavar="PATH",
        help="Read the state patch (a JSON object) from a file ('-': stdin).",
    )(fn)
    return click.option(
        "--patch",
        "patch_text",
        metavar="JSON",
        help="Keys to set in the run's state first, e.g. '{\"limit\": 500}'.",
    )(fn)


def read_state_patch(patch_text: str | None, patch_file: IO[str] | None) -> Any:
    """The state patch given by :func:`state_patch_options`, or None."""
    if patch_text is not None and patch_file is not None:
        raise click.UsageError("give --patch or --patch-file, not both")
    if patch_file is not None:
        return parse_json(patch_file.read(), "--patch-file", want_object=True)
    if patch_text is not None:
        return parse_json(patch_text, "--patch", want_object=True)
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str, option: str, *, want_object: bool = False) -> Any:
    """Parse the JSON given to ``option``; a :class:`CliError` (nothing changed) if invalid."""
    example = "'{\"amount\": 42}'"
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise CliError(
            f"{option} is not valid JSON ({exc}); nothing was changed. Pass e.g. {option} {example}"
        ) from None
    if want_object and not isinstance(value, dict):
        raise CliError(
            f"{option} must be a JSON object such as {example}, not "
            f"{type(value).__name__}; nothing was changed"
        )
    return value


def require_database() -> None:
    """Refuse early when the embedded SQLite file does not exist, rather than create it empty.

    Other problems (unreachable server, missing tables) surface on first use and are turned
    into one line by :class:`pipeline.cli.errors.RavelGroup`.
    """
    path = sqlite_file(get_settings().database_url)
    if path is not None and not path.exists():
        raise CliError(
            f"the database is not migrated: there is no file {path}; "
            f"{MIGRATE_HINT} to create it (or point RAVEL_DATABASE_URL / "
            "--database-url at an existing database)"
        )
