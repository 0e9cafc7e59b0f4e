"""``ravel keys``: create, list and revoke the HTTP API's bearer keys (stored hashed)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.common import json_option
from pipeline.cli.output import echo_json, print_table
from pipeline.web import keys as api_keys
from pipeline.web.keys import Role

_file = click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RAVEL_API_KEYS_FILE",
    show_envvar=True,
    help="The keys file (default: api-keys.toml under RAVEL_HOME).",
)


def _path(path: Path | None) -> Path:
    return path if path is not None else api_keys.keys_file()


@click.group()
def keys() -> None:
    """API keys of `ravel serve` and the Flask blueprint: who a key acts as, and what it may do."""


@keys.command()
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([r.label for r in Role]),
    required=True,
    help="viewer: read runs; approver: also decide approvals; operator: also start, "
    "retry and cancel runs and send events.",
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="GROUP",
    help="A group the principal belongs to, for approvals naming group:GROUP (repeatable).",
)
@click.option("--principal", help="Who the key acts as in the audit log (default: NAME).")
@_file
@json_option
def create(
    name: str,
    role: str,
    groups: tuple[str, ...],
    principal: str | None,
    path: Path | None,
    as_json: bool,
) -> None:
    """Create a key; print it once (only its SHA-256 is stored)."""
    where = _path(path)
    secret, entry = api_keys.create(where, name, principal=principal, roles=[role], groups=groups)
    if as_json:
        echo_json(
            {
                "name": entry.name,
                "principal": entry.principal,
                "role": role,
                "groups": list(entry.groups),
                "file": str(where),
                "key": secret,
            }
        )
        return
    # The description on stderr, the key alone on stdout: KEY=$(ravel keys create ...) works.
    groups_text = ", ".join(entry.groups) or "none"
    click.echo(
        f"key {entry.name} created in {where}: principal {entry.principal}, role "
        f"{role}, groups {groups_text}. It is shown only now: store it safely; send it "
        "as `Authorization: Bearer <key>`.",
        err=True,
    )
    click.echo(secret)


@keys.command("list")
@_file
@json_option
def list_keys(path: Path | None, as_json: bool) -> None:
    """List the configured keys (names, principals, roles, groups; never the keys)."""
    found = api_keys.load(_path(path)).keys
    if as_json:
        echo_json(
            [
                {
                    "name": k.name,
                    "principal": k.principal,
                    "roles": [r.label for r in k.roles],
                    "groups": list(k.groups),
                }
                for k in found
            ]
        )
        return
    rows = [
        (k.name, k.principal, ", ".join(r.label for r in k.roles), ", ".join(k.groups))
        for k in found
    ]
    print_table(
        ["name", "principal", "roles", "groups"],
        rows,
        empty=f"no API keys in {_path(path)}; create one with `ravel keys create`",
    )


@keys.command()
@click.argument("name")
@_file
def revoke(name: str, path: Path | None) -> None:
    """Remove a key: requests with it are refused from the next request on."""
    where = _path(path)
    api_keys.revoke(where, name)
    click.echo(f"key {name} revoked in {where}")
