"""Posting approval messages to Slack: after the park commits, in the background, retried.

When a run parks on an approval, :func:`queue_message` (an ``on_park`` handler) adds a row to
the outbox (``ravel_slack_messages``, keyed by the wait id) and wakes this process's
:class:`Courier`, a daemon thread that posts due rows with ``chat.postMessage``. The step
that parked never waits for Slack and never fails because of it. A failed post is retried
with a growing delay (``Retry-After`` honoured); a worker that dies before queueing or while
posting is covered by the courier of each worker's main process, which also queues open
approvals that have no row yet and takes over rows whose claim ran out.

One message per wait: the wait id is the outbox's primary key and a row is posted only
under a claim. The one case Slack's API leaves open is a post whose answer never arrives
(the connection drops after Slack accepted it): the retry may then show the message twice.
"""

from __future__ import annotations

import logging
import os
import threading

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from pipeline import api, notify
from pipeline.errors import RunNotFound
from pipeline.redact import redact_text
from pipeline.slack.config import SlackSettings, slack_settings
from pipeline.slack.message import approval_message
from pipeline.store import get_db
from pipeline.store import slack_outbox as outbox
from pipeline.views import RunView

log = logging.getLogger("ravel.slack")

#: Open approvals younger than this without a queued message are queued by the sweep (a
#: worker died between the park and queueing it). Older ones are left alone, so enabling
#: Slack does not post every approval that was ever left open.
SWEEP_WINDOW_SECONDS = 24 * 3600.0
#: Seconds before a failed post is retried the first time; doubled each time, at most 300.
RETRY_BASE_SECONDS = 2.0


def web_client(settings: SlackSettings) -> WebClient:
    """slack_sdk's client for ``settings`` (its own retries off: the outbox retries, so a
    post is never repeated behind the outbox's back)."""
    return WebClient(
        token=settings.bot_token,
        base_url=settings.api_url,
        timeout=max(1, round(settings.timeout)),
        retry_handlers=[],
    )


class Postman:
    """Posts the due rows of the outbox.

    Args:
        settings: the Slack settings (default: the environment's).
        client: the Web API client (default: :func:`web_client`).
        retry_base: seconds before the first retry (default :data:`RETRY_BASE_SECONDS`);
            doubled each time, at most 300.
        max_attempts: attempts before a message is given up (``failed``, logged).
        lease: seconds a claim holds a row; longer than a post may take.
    """

    def __init__(
        self,
        settings: SlackSettings | None = None,
        *,
        client: WebClient | None = None,
        retry_base: float | None = None,
        max_attempts: int = 8,
        lease: float = 60.0,
    ) -> None:
        """Prepare to post; nothing is sent until :meth:`deliver_due`."""
        self.settings = settings or slack_settings()
        self.client = client or web_client(self.settings)
        self.retry_base = RETRY_BASE_SECONDS if retry_base is None else retry_base
        self.max_attempts = max_attempts
        self.lease = max(lease, 3 * self.settings.timeout)
        #: seconds until the soonest retry this postman scheduled (None: none)
        self.next_retry: float | None = None

    def deliver_due(self, limit: int = 20) -> int:
        """Claim and post up to ``limit`` due messages; returns how many were claimed."""
        claimed = outbox.claim_due(get_db(), self.lease, limit)
        for item in claimed:
            self._deliver(item)
        return len(claimed)

    def _deliver(self, item: outbox.Outgoing) -> None:
        db = get_db()
        try:
            run = api.get_run(item.run_id)
        except RunNotFound:
            outbox.mark_dropped(db, item.wait_id, "the run no longer exists")
            return
        wait = run.wait
        if wait is None or wait.id != item.wait_id:
            # Decided, expired or cancelled before Slack heard of it: nothing to ask.
            outbox.mark_dropped(db, item.wait_id, "the wait closed before it was posted")
            return
        text, blocks = approval_message(
            run, wait, outbox.started_by(db, run.id), self.settings.run_link(run.id)
        )
        try:
            answer = self.client.chat_postMessage(
                channel=self.settings.channel or "",
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
                metadata={
                    "event_type": "ravel_approval",
                    "event_payload": {"run_id": run.id, "wait_id": wait.id},
                },
            )
        except Exception as exc:
            self._failed(item, exc)
            return
        outbox.mark_sent(db, item.wait_id, answer.get("channel"), answer.get("ts"))
        log.info("run %s: approval %s posted to Slack", run.id, wait.id)

    def _failed(self, item: outbox.Outgoing, exc: Exception) -> None:
        retry_in: float | None = min(300.0, self.retry_base * 2 ** (item.attempts - 1))
        if isinstance(exc, SlackApiError):
            error = f"Slack answered {exc.response.status_code}: {exc.response.get('error')}"
            after = exc.response.headers.get("Retry-After") if exc.response.headers else None
            if exc.response.status_code == 429 and str(after or "").isdigit():
                retry_in = max(float(str(after)), retry_in or 0.0)
        else:
            error = f"{type(exc).__name__}: {exc}"
        error = redact_text(" ".join(error.split()), 500)
        if item.attempts >= self.max_attempts:
            retry_in = None
            log.error(
                "run %s: approval %s was not posted to Slack after %d attempts (%s); "
                "it stays open: decide it with `ravel approvals` or the API",
                item.run_id,
                item.wait_id,
                item.attempts,
                error,
            )
        else:
            log.warning(
                "run %s: posting approval %s to Slack failed (%s); retrying in %.0f s",
                item.run_id,
                item.wait_id,
                error,
                retry_in,
            )
        outbox.mark_failed(get_db(), item.wait_id, error, retry_in)
        if retry_in is not None:
            self.next_retry = min(retry_in, self.next_retry or retry_in)


class Courier(threading.Thread):
    """A daemon thread that posts due messages, when kicked and every ``every`` seconds.

    Args:
        every: seconds between passes when nothing kicks it.
        sweep: also queue recent open approvals that have no row (the worker's main process
            does; a pool process only posts what it queued).
    """

    def __init__(self, every: float = 2.0, *, sweep: bool = False) -> None:
        """Prepare the thread; :meth:`start` runs it."""
        super().__init__(name="ravel-slack", daemon=True)
        self.every = every
        self.sweep = sweep
        self.pid = os.getpid()
        self._kicked = threading.Event()
        self._stopping = threading.Event()

    def kick(self) -> None:
        """Run a pass now."""
        self._kicked.set()

    def stop(self) -> None:
        """End the thread after its current pass."""
        self._stopping.set()
        self._kicked.set()

    def run(self) -> None:
        """Pass until :meth:`stop`."""
        pause = self.every
        while True:
            self._kicked.wait(pause)
            self._kicked.clear()
            if self._stopping.is_set():
                return
            retry = self.pass_once()
            # A retry this process scheduled is made on time, not at the next regular pass.
            pause = self.every if retry is None else min(self.every, retry + 0.01)

    def pass_once(self) -> float | None:
        """Queue what the sweep finds, then post until nothing is due; never raises.

        Returns:
            Seconds until the soonest retry this pass scheduled, or None.
        """
        try:
            settings = slack_settings()
            if not settings.posting:
                return None
            if self.sweep:
                outbox.add_unposted(get_db(), SWEEP_WINDOW_SECONDS)
            postman = Postman(settings)
            while postman.deliver_due() and not self._stopping.is_set():
                pass
            return postman.next_retry
        except Exception as exc:
            log.warning("Slack courier pass failed: %s", " ".join(str(exc).split())[:300])
            return None


_lock = threading.Lock()
_courier: Courier | None = None


def courier(*, sweep: bool = False) -> Courier:
    """This process's courier, started on first use (again in a forked child)."""
    global _courier
    with _lock:
        if _courier is None or _courier.pid != os.getpid() or not _courier.is_alive():
            _courier = Courier(sweep=sweep)
            _courier.start()
        return _courier


def stop_courier() -> None:
    """Stop this process's courier, if it runs."""
    global _courier
    with _lock:
        if _courier is not None and _courier.pid == os.getpid():
            _courier.stop()
        _courier = None


def queue_message(run: RunView) -> None:
    """``on_park`` handler: queue the Slack message of a run that parked on an approval and
    wake the courier (the post happens in its thread, after this returns)."""
    wait = run.wait
    if wait is None or wait.kind != "approval" or not slack_settings().posting:
        return
    outbox.add(get_db(), wait.id, run.id)
    courier().kick()


_installed = False


def install() -> bool:
    """Post approval messages from this process when ``SLACK_BOT_TOKEN`` and
    ``RAVEL_SLACK_CHANNEL`` are set; returns whether it does.

    Raises:
        ConfigurationError: a bot token without a channel.
    """
    global _installed
    settings = slack_settings()
    settings.check()
    if settings.posting and not _installed:
        notify.on_park()(queue_message)
        _installed = True
    return settings.posting


__all__ = [
    "RETRY_BASE_SECONDS",
    "SWEEP_WINDOW_SECONDS",
    "Courier",
    "Postman",
    "courier",
    "install",
    "queue_message",
    "stop_courier",
    "web_client",
]
