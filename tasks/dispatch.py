"""Publishes wake-ups as Celery messages: the dispatcher ``pipeline`` is given."""

from __future__ import annotations

from pipeline.store.decisions import Wakeup


def publish(wakeup: Wakeup, queue: str) -> None:
    """Send the wake-up of ``wakeup.run_id`` to the step's task ``<workflow>.<step>``."""
    from tasks import app  # the app module installs this dispatcher; import it lazily

    app.send_task(
        f"{wakeup.workflow}.{wakeup.step}",
        kwargs={"run_id": wakeup.run_id, "seq": wakeup.seq},
        queue=queue,
        ignore_result=True,
    )
