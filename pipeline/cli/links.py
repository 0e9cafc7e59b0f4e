"""``ravel approvals link RUN --for alice``: an approval link to send to a person."""

from __future__ import annotations

from datetime import timedelta

import click

from pipeline.approval_links import create_link
from pipeline.cli.common import actor_option, json_option, require_database
from pipeline.cli.errors import CliError
from pipeline.cli.output import echo_json, when
from pipeline.slack.config import slack_settings


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "--for",
    "principal",
    required=True,
    metavar="PRINCIPAL",
    help="The person who decides with the link (one of the wait's approvers, by "
    "name or through --group).",
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="GROUP",
    help="A group the person belongs to, for approvers naming group:GROUP "
    "(repeatable). You vouch for it.",
)
@click.option(
    "--wait-id", metavar="ID", help="The wait the link decides (default: the run's open approval)."
)
@click.option(
    "--valid-for",
    type=click.FloatRange(min=0.01, max=24 * 365),
    default=168.0,
    show_default=True,
    metavar="HOURS",
    help="Hours the link works, cut to the approval's deadline.",
)
@click.option(
    "--base-url",
    envvar="RAVEL_PUBLIC_URL",
    show_envvar=True,
    metavar="URL",
    help="Where Ravel's web blueprint is reachable from a browser, e.g. "
    "https://ops.example.com/ravel (`ravel serve` or your app's mount point).",
)
@actor_option
@json_option
def link(
    run_id: str,
    principal: str,
    groups: tuple[str, ...],
    wait_id: str | None,
    valid_for: float,
    base_url: str | None,
    actor: str,
    as_json: bool,
) -> None:
    """Print a single-use link with which PRINCIPAL decides the run's open approval.

    Opening the link shows the question and changes nothing; its Approve or Reject button
    decides, once. Send it only to that person: whoever holds it decides as them.
    """
    base = (base_url or slack_settings().public_url or "").strip()
    if not base.startswith(("https://", "http://")):
        raise CliError(
            "set RAVEL_PUBLIC_URL or pass --base-url with where Ravel's web pages "
            "are reachable, e.g. --base-url https://ops.example.com/ravel; no link "
            "was made"
        )
    require_database()
    made = create_link(
        run_id,
        principal,
        groups=groups,
        created_by=actor,
        wait_id=wait_id,
        valid_for=timedelta(hours=valid_for),
        base_url=base,
    )
    if as_json:
        echo_json(
            {
                "url": made.url,
                "run_id": made.run_id,
                "wait_id": made.wait_id,
                "principal": made.principal,
                "expires_at": made.expires_at,
            }
        )
        return
    click.echo(made.url)
    click.echo(
        f"for {made.principal}, decides wait {made.wait_id} of run {made.run_id} once; "
        f"valid until {when(made.expires_at)}",
        err=True,
    )


__all__ = ["link"]
