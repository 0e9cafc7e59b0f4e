"""Who a Slack user is in Ravel: a principal and groups, from the operator's configuration.

``RAVEL_SLACK_USERS_FILE`` (default ``$RAVEL_HOME/slack-users.toml``; a ``.json`` file works
too)::

    team_id = "T0123ABCD"          # optional: only clicks from this workspace count

    [users.U0123ABCD]              # the Slack user id (profile > "Copy member ID")
    principal = "alice"
    groups = ["finance"]

A click is decided as that principal with those groups. Nothing in Slack's request names the
groups: only this file does, so a Slack user cannot claim a group.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigurationError
from pipeline.web.keys import check_name

_SLACK_ID = re.compile(r"^[A-Z0-9]{2,40}$")
_USER_FIELDS = {"principal", "groups"}


@dataclass(frozen=True)
class SlackUser:
    """A mapped Slack user: who they act as and the groups they belong to."""

    principal: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class SlackDirectory:
    """The configured Slack users (and the one workspace they may click from, if set)."""

    users: dict[str, SlackUser]
    team_id: str | None = None

    def find(self, team_id: str | None, user_id: str | None) -> SlackUser | None:
        """The mapped user, or None (unknown user, or a click from another workspace)."""
        if not user_id or (self.team_id is not None and team_id != self.team_id):
            return None
        return self.users.get(user_id)


def _slack_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _SLACK_ID.match(value):
        raise ConfigurationError(
            f"{what} {value!r} is not a Slack id (capital letters and digits, e.g. U0123ABCD)"
        )
    return value


def _user(user_id: str, raw: Any) -> SlackUser:
    where = f"users.{user_id}"
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where} must be a table with principal and groups")
    unknown = sorted(set(raw) - _USER_FIELDS)
    if unknown:
        raise ConfigurationError(
            f"{where} has unknown fields {', '.join(unknown)}; fields are: groups, principal"
        )
    if "principal" not in raw:
        raise ConfigurationError(f"{where} lacks 'principal' (the Ravel person it acts as)")
    groups = raw.get("groups", [])
    if not isinstance(groups, list):
        raise ConfigurationError(f'{where}: groups must be a list, e.g. ["finance"]')
    return SlackUser(
        check_name(raw["principal"], f"{where}: principal"),
        tuple(check_name(g, f"{where}: group").removeprefix("group:") for g in groups),
    )


def parse(text: str, path: Path) -> SlackDirectory:
    """The directory of a users file's text (TOML, or JSON for a ``.json`` path)."""
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except ValueError as exc:
        raise ConfigurationError(
            f"the Slack users file {path} is not valid "
            f"{'JSON' if path.suffix == '.json' else 'TOML'}: {exc}"
        ) from None
    try:
        if not isinstance(data, dict) or set(data) - {"team_id", "users"}:
            raise ConfigurationError("it must hold only `team_id` and a table `users`")
        users = data.get("users", {})
        if not isinstance(users, dict):
            raise ConfigurationError("`users` must be a table of Slack user ids")
        team = data.get("team_id")
        return SlackDirectory(
            {_slack_id(uid, "the user id"): _user(uid, raw) for uid, raw in users.items()},
            None if team is None else _slack_id(team, "team_id"),
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"the Slack users file {path} is invalid: {exc}") from None


_cache: dict[Path, tuple[tuple[int, int, int], SlackDirectory]] = {}


def load(path: Path) -> SlackDirectory:
    """The directory in ``path`` (re-read when it changes; empty if it does not exist).

    Raises:
        ConfigurationError: the file cannot be read or is invalid.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        return SlackDirectory({})
    except OSError as exc:
        raise ConfigurationError(f"cannot read the Slack users file {path}: {exc}") from None
    stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the Slack users file {path}: {exc}") from None
    directory = parse(text, path)
    _cache[path] = (stamp, directory)
    return directory


__all__ = ["SlackDirectory", "SlackUser", "load", "parse"]
