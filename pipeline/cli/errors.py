"""Turning every failure into one line on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

from typing import IO, Any

import click
from alembic.util.exc import CommandError
from sqlalchemy.exc import ArgumentError, DBAPIError

from pipeline.errors import PipelineError
from pipeline.store.db_errors import current_url, reason, translate


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


def describe(exc: Exception) -> str:
    """The one-line message an operator sees for ``exc``."""
    if isinstance(exc, PipelineError):
        return str(exc) or type(exc).__name__
    if isinstance(exc, CommandError):
        return f"migration failed: {exc}"
    if isinstance(exc, ArgumentError):
        return (
            f"invalid database URL {current_url()}: {exc}; set RAVEL_DATABASE_URL or "
            "--database-url to e.g. postgresql://user@host/db or sqlite:///path/ravel.db"
        )
    if isinstance(exc, DBAPIError):
        better = translate(exc)
        if better is not None:
            return str(better).replace("RAVEL_DATABASE_URL", "RAVEL_DATABASE_URL or --database-url")
        return f"database error at {current_url()}: {reason(exc)}"
    text = str(exc)
    return (
        f"unexpected {type(exc).__name__}{': ' + text if text else ''} "
        "(rerun with --traceback for details)"
    )


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
