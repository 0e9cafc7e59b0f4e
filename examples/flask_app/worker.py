"""The shop's one Celery app: ``celery -A examples.flask_app.worker worker -B`` runs the
shop's own task and Ravel's steps (``RAVEL_WORKFLOWS=examples.flask_app.flows``)."""

from __future__ import annotations

import os

from celery import Celery

import tasks  # Ravel's Celery package

from . import store

app = Celery("flask_shop")
app.conf.update(
    # Ravel's processes publish through RAVEL_BROKER_URL: one broker for everything.
    broker_url=os.environ.get("RAVEL_BROKER_URL", "redis://127.0.0.1:6379/0"),
    accept_content=["json"],  # Ravel: JSON only
    task_serializer="json",
    worker_prefetch_multiplier=1,  # Ravel: one message reserved at a time
    task_acks_late=True,
    task_ignore_result=True,
    task_default_queue=os.environ.get("FLASK_SHOP_QUEUE", "flask_shop"),
    worker_hijack_root_logger=False,
)


@app.task(name="flask_shop.send_confirmation")
def send_confirmation(refund_id: int) -> None:
    """Tell the customer their request is in (here: record that it was sent)."""
    with store.transaction() as db:
        db.execute("UPDATE refunds SET confirmation_sent = 1 WHERE id = ?", (refund_id,))


tasks.install(app)
