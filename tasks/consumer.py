"""The worker's consumer: a message that is not a task call is dropped, not fatal.

Celery's consumer turns each message into a task request in the worker's main process. For
some malformed messages (a JSON body that is not ``[args, kwargs, options]``, a ``task``
header that is a list, ...) that raises an error Celery does not expect there, and the whole
worker stops ("Unrecoverable error"), giving the message back to the broker for the next
worker to die on. Anyone who can write to the broker could stop every worker with one message.

This consumer treats such an error the way Celery treats a message it recognises as invalid:
one log line, the message dropped (rejected without requeue), and the worker goes on serving.
Nothing is lost: a run's wake-up lives in the database, and the reaper re-publishes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import signals
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.message import Message

log = logging.getLogger("ravel.worker")


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer with malformed messages dropped (``worker_consumer`` in the config)."""

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Callable[[Message], None]:
        """Celery's task message handler, guarded against messages that make it raise."""
        handle: Callable[[Message], None] = super().create_task_handler(*args, **kwargs)
        # Lost connections and closed channels are not the message's fault: the consumer
        # reconnects and restarts on them, as it always did.
        passed_on = (*self.connection_errors, *self.channel_errors)

        def on_task_received(message: Message) -> None:
            try:
                handle(message)
            except passed_on:
                raise
            except Exception as exc:
                self._drop(message, exc)

        return on_task_received

    def _drop(self, message: Message, exc: Exception) -> None:
        headers = message.headers if isinstance(message.headers, dict) else {}
        log.error(
            "dropped a message that is not a task call (task %.80r, id %.80r, %d-byte %s body): "
            "%s: %.300s; nothing ran",
            headers.get("task"),
            headers.get("id"),
            len(message.body or b""),
            message.content_type,
            type(exc).__name__,
            exc,
        )
        if not message.acknowledged:
            message.reject_log_error(log, self.connection_errors)
        signals.task_rejected.send(sender=self, message=message, exc=exc)
