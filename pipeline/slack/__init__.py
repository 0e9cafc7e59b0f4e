"""Approvals in Slack: a Block Kit message with Approve and Reject buttons for each approval.

- :mod:`pipeline.slack.outbox` posts the message after a run parks (in the background,
  retried, once per wait); workers call :func:`install` when ``SLACK_BOT_TOKEN`` is set.
- :mod:`pipeline.web.slack` is the interactivity endpoint the buttons call.
- :mod:`pipeline.slack.users` maps Slack users to principals and groups.
"""

from __future__ import annotations

from pipeline.slack.config import SlackSettings, slack_settings
from pipeline.slack.outbox import install

__all__ = ["SlackSettings", "install", "slack_settings"]
