"""Turning every failure into one line on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

import re
from typing import IO, Any

import click
from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from pipeline.errors import PipelineError
from pipeline.settings import get_settings

MIGRATE_HINT = "run `ravel db upgrade`"


class CliError(click.ClickException):
    """A failure reported as ``error: <message>`` on one line of stderr.

    The process exits with code 1.

    Args:
        message: what went wrong and what to do; newlines are folded into spaces.
    """

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the one-line message to stderr (or ``file``)."""
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) folded into one space."""
    return " ".join(str(text).split())


def mask_url(url: str) -> str:
    """A database URL fit to print: the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparseable: mask whatever sits between "user:" and "@"
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def current_url() -> str:
    """The configured database URL, masked; ``?`` if the settings cannot even be read."""
    try:
        return mask_url(get_settings().database_url)
    except PipelineError:
        return "?"


def _dbapi_reason(exc: DBAPIError) -> str:
    orig = exc.orig if exc.orig is not None else exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def _is_missing_table(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "pgcode", None)
    return code == "42P01" or "no such table" in str(exc.orig)


def _is_old_schema(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "pgcode", None)
    return code == "42703" or "no such column" in str(exc.orig)


def describe(exc: Exception) -> str:
    """The one-line message an operator sees for ``exc``."""
    if isinstance(exc, PipelineError):
        return str(exc) or type(exc).__name__
    if isinstance(exc, CommandError):
        return f"migration failed: {exc}"
    if isinstance(exc, ArgumentError):
        return (f"invalid database URL {current_url()}: {exc}; set RAVEL_DATABASE_URL or "
                "--database-url to e.g. postgresql://user@host/db or sqlite:///path/ravel.db")
    if isinstance(exc, DBAPIError):
        if _is_missing_table(exc):
            return f"the database at {current_url()} is not migrated; {MIGRATE_HINT}"
        if _is_old_schema(exc):
            return (f"the database at {current_url()} has an older schema than this version "
                    f"of Ravel; {MIGRATE_HINT}")
        if isinstance(exc, OperationalError):
            return (f"cannot reach the database at {current_url()}: {_dbapi_reason(exc)}; is it "
                    "running, and is RAVEL_DATABASE_URL (or --database-url) right?")
        return f"database error at {current_url()}: {_dbapi_reason(exc)}"
    text = str(exc)
    return (f"unexpected {type(exc).__name__}{': ' + text if text else ''} "
            "(rerun with --traceback for details)")


class RavelGroup(click.Group):
    """The top-level group: converts any exception raised by a command into a :class:`CliError`.

    Click's own exceptions (usage errors, ``--help``, aborts) pass through untouched. With
    ``--traceback`` the exception is re-raised as is, for debugging.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; translate failures into one line and exit code 1."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, EOFError):
            raise
        except Exception as exc:
            if ctx.params.get("show_traceback"):
                raise
            raise CliError(describe(exc)) from exc
