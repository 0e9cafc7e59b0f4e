"""The publisher builds each queue's declaration once per settings (no services)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.settings import reload_settings
from pipeline.store.decisions import Wakeup
from tasks.dispatch import publisher


class _Recorder:
    """Stands in for the Celery app: keeps what each ``send_task`` was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send_task(self, name: str, **options: Any) -> None:
        self.sent.append((name, options))


@pytest.fixture
def settings_restored() -> Iterator[None]:
    yield
    reload_settings()


def test_one_declaration_per_queue_until_the_settings_change(
    monkeypatch: pytest.MonkeyPatch, settings_restored: None
) -> None:
    monkeypatch.setenv("RAVEL_BROKER_URL", "redis://127.0.0.1:6379/14")
    reload_settings()
    app = _Recorder()
    send = publisher(app)
    wakeup = Wakeup("0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10", "refund", "check", 3, 2)
    send(wakeup, "steps-a")
    send(wakeup, "steps-a")
    send(wakeup, "steps-b")
    (name, first), (_, again), (_, other) = app.sent
    # The message is what it always was: the step's task, its kwargs, JSON, no result.
    assert name == "refund.check"
    assert first["kwargs"] == {"run_id": wakeup.run_id, "seq": 3, "version": 2}
    assert first["serializer"] == "json" and first["ignore_result"] is True
    assert first["queue"].name == "steps-a" and other["queue"].name == "steps-b"
    assert again["queue"] is first["queue"]
    assert not first["queue"].queue_arguments  # Redis: a plain declaration

    # Reloaded settings (here: RabbitMQ) declare the queue anew, as quorum queues.
    monkeypatch.setenv("RAVEL_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    reload_settings()
    send(wakeup, "steps-a")
    rebuilt = app.sent[-1][1]["queue"]
    assert rebuilt is not first["queue"]
    assert rebuilt.name == "steps-a"
    assert rebuilt.queue_arguments == {"x-queue-type": "quorum"}
