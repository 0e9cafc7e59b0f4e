"""A project's own Celery app with Ravel installed on it (see ``test_host_celery_app``)."""

from __future__ import annotations

import os

from celery import Celery

import tasks

app = Celery("hostproj")
app.conf.update(
    broker_url=os.environ["RAVEL_BROKER_URL"],
    worker_prefetch_multiplier=int(os.environ.get("HOST_PREFETCH", "1")),
)


@app.task(name="hostproj.ping")
def ping() -> str:
    """The host's own task."""
    return "pong"


tasks.install(app)
