"""``ravel``: the operator's command line (runs, approvals, events, audit, migrations).

Every read command takes ``--json``. Failures print one line, ``error: <message>``, on stderr
and exit with code 1 (2 for usage errors); never a traceback unless ``--traceback`` asks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import click

from pipeline import store
from pipeline.cli.admin import audit, db, workflows
from pipeline.cli.approvals import approvals, events
from pipeline.cli.doctor import doctor
from pipeline.cli.errors import CliError, RavelGroup
from pipeline.cli.fork import fork
from pipeline.cli.keys import keys
from pipeline.cli.links import link
from pipeline.cli.metrics import metrics
from pipeline.cli.runs import runs
from pipeline.cli.serve import serve
from pipeline.settings import reload_settings

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=RavelGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="ravel", prog_name="ravel")
@click.option(
    "--database-url",
    metavar="URL",
    help="The run store for this invocation (overrides RAVEL_DATABASE_URL).",
)
@click.option(
    "--traceback",
    "show_traceback",
    is_flag=True,
    help="Show the full traceback of an error (for bug reports).",
)
def cli(database_url: str | None, show_traceback: bool) -> None:
    """Operate Ravel: watch runs, decide approvals, send events, verify the audit log."""
    if database_url is not None:
        if not database_url.strip():
            raise CliError("--database-url is empty; pass e.g. postgresql://user@host/db")
        os.environ["RAVEL_DATABASE_URL"] = database_url
        reload_settings()
        store.reset_db()


for _group in (runs, approvals, events, audit, workflows, db, doctor, serve, keys, metrics):
    cli.add_command(_group)
runs.add_command(fork)
approvals.add_command(link)


def _configure_logging() -> None:
    """Warnings from Ravel (e.g. a wake-up that could not be published) as one line each."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logger = logging.getLogger("ravel")
    if not logger.handlers:
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``ravel`` console script."""
    _configure_logging()
    cli.main(args=list(argv) if argv is not None else None, prog_name="ravel")


__all__ = ["cli", "main"]
