"""Slack settings, from the environment (see the README's "Slack approvals")."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigurationError
from pipeline.settings import get_settings

#: Slack's Web API.
SLACK_API_URL = "https://slack.com/api/"


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(
            f"{name}={raw!r} is not a number of seconds; set e.g. {default:g}"
        ) from None
    if not 0 < value < 3600:
        raise ConfigurationError(f"{name}={raw!r} must be between 0 and 3600 seconds")
    return value


@dataclass(frozen=True)
class SlackSettings:
    """Where and how Ravel posts approval messages, and how it checks Slack's requests.

    Attributes:
        bot_token: ``SLACK_BOT_TOKEN`` (``xoxb-...``); posting is on when it and ``channel``
            are set.
        channel: ``RAVEL_SLACK_CHANNEL``, the channel id (``C0123...``) messages go to.
        signing_secret: ``SLACK_SIGNING_SECRET``, for the interactivity endpoint.
        api_url: ``RAVEL_SLACK_API_URL`` (Slack's Web API; tests point it at a local stub).
        public_url: ``RAVEL_PUBLIC_URL``, where Ravel's blueprint is reachable from a browser
            (e.g. ``https://ops.example.com/ravel``): approval links start with it.
        run_url: ``RAVEL_RUN_URL``, the run's page as a template with ``{run_id}`` (a host
            app's status page); default ``<public_url>/ui/runs/{run_id}`` (the dashboard).
        users_file: ``RAVEL_SLACK_USERS_FILE``: Slack user ids to principals and groups
            (default ``$RAVEL_HOME/slack-users.toml``).
        timeout: ``RAVEL_SLACK_TIMEOUT``, seconds one Slack call may take (default 10).
    """

    bot_token: str | None = field(default=None, repr=False)
    channel: str | None = None
    signing_secret: str | None = field(default=None, repr=False)
    api_url: str = SLACK_API_URL
    public_url: str | None = None
    run_url: str | None = None
    users_file: Path = Path("slack-users.toml")
    timeout: float = 10.0

    @property
    def posting(self) -> bool:
        """Whether approval messages are posted (a bot token and a channel are set)."""
        return bool(self.bot_token and self.channel)

    def run_link(self, run_id: str) -> str | None:
        """The URL of the run's page, or None when neither URL setting is set."""
        if self.run_url:
            return self.run_url.replace("{run_id}", run_id)
        if self.public_url:
            return f"{self.public_url}/ui/runs/{run_id}"
        return None

    def check(self) -> None:
        """Refuse a half configuration: a bot token without a channel."""
        if self.bot_token and not self.channel:
            raise ConfigurationError(
                "SLACK_BOT_TOKEN is set but RAVEL_SLACK_CHANNEL is not; "
                "set it to the id of the channel approvals go to "
                "(e.g. C0123ABCD), or unset SLACK_BOT_TOKEN"
            )


def slack_settings() -> SlackSettings:
    """The Slack settings of the environment now (read on each call: cheap, and tests and
    host apps may change them)."""
    env = os.environ
    users_file = env.get("RAVEL_SLACK_USERS_FILE", "").strip()
    public_url = env.get("RAVEL_PUBLIC_URL", "").strip().rstrip("/")
    run_url = env.get("RAVEL_RUN_URL", "").strip()
    if run_url and "{run_id}" not in run_url:
        raise ConfigurationError(
            f"RAVEL_RUN_URL={run_url!r} must contain {{run_id}}, e.g. "
            "https://app.example.com/runs/{run_id}"
        )
    return SlackSettings(
        bot_token=env.get("SLACK_BOT_TOKEN", "").strip() or None,
        channel=env.get("RAVEL_SLACK_CHANNEL", "").strip() or None,
        signing_secret=env.get("SLACK_SIGNING_SECRET", "").strip() or None,
        api_url=env.get("RAVEL_SLACK_API_URL", "").strip() or SLACK_API_URL,
        public_url=public_url or None,
        run_url=run_url or None,
        users_file=(Path(users_file) if users_file else get_settings().home / "slack-users.toml"),
        timeout=_seconds("RAVEL_SLACK_TIMEOUT", 10.0),
    )


__all__ = ["SLACK_API_URL", "SlackSettings", "slack_settings"]
