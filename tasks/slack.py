"""Slack approval messages in a worker (when ``SLACK_BOT_TOKEN`` is set).

The ``on_park`` handler is installed before the pool starts, so every pool process queues
the message of a run it parks and posts it from a thread of its own; the worker's main
process runs a courier that retries failed posts and posts what a killed pool process left
(see :mod:`pipeline.slack.outbox`).
"""

from __future__ import annotations

import logging

from pipeline.errors import ConfigurationError
from pipeline.redact import redact_text
from pipeline.slack import outbox
from pipeline.slack.config import slack_settings

log = logging.getLogger("ravel.slack")


def before_pool() -> None:
    """Install the handler; a half configuration stops the worker in one line (exit 1)."""
    try:
        posting = outbox.install()
    except ConfigurationError as exc:
        log.critical("ravel worker cannot start: %s", redact_text(str(exc)))
        raise SystemExit(1) from None
    if posting:
        log.info("approval messages go to Slack channel %s", slack_settings().channel)


def start() -> None:
    """Start the main process's courier (worker ready)."""
    if slack_settings().posting:
        outbox.courier(sweep=True)


def stop() -> None:
    """Stop the courier (worker shutdown)."""
    outbox.stop_courier()


__all__ = ["before_pool", "start", "stop"]
