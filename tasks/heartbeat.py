"""A worker's heartbeat: records what it serves, and says loudly when no reaper runs.

A daemon thread of the worker's main process (never of a forked pool child: fork copies only
the calling thread), so the consumer loop never waits on the database for it.
"""

from __future__ import annotations

import logging
import threading
import time

from pipeline.settings import get_settings
from pipeline.store import get_db, health
from pipeline.workflow import all_workflows

log = logging.getLogger("ravel.worker")

#: Problems of the heartbeat itself (database down) are logged at most this often.
_REPEAT_SECONDS = 60.0


def served_workflows() -> dict[str, list[int]]:
    """``{workflow: [versions]}`` loaded in this process."""
    served: dict[str, list[int]] = {}
    for flow in all_workflows():
        served.setdefault(flow.name, []).append(flow.version)
    return served


class Heartbeat(threading.Thread):
    """Touches this worker's row every few seconds and checks the reaper's last pass.

    Args:
        worker: the worker's node name (``celery@host``).
        every: seconds between beats (default: :data:`health.HEARTBEAT_SECONDS`, shorter
            when the reaper alarm's limit is short).
    """

    def __init__(self, worker: str, every: float | None = None) -> None:
        """Prepare the thread; :meth:`beat` once and :meth:`start` to run it."""
        super().__init__(name="ravel-heartbeat", daemon=True)
        self.worker = worker
        self.limit = health.reaper_silence_limit(get_settings().reaper_interval)
        self.every = every or min(health.HEARTBEAT_SECONDS, self.limit / 3)
        self.workflows = served_workflows()
        self.started = time.monotonic()
        self._stop_event = threading.Event()
        self._alarm_at: float | None = None
        self._failed_at: float | None = None

    def run(self) -> None:
        """Beat until :meth:`stop`."""
        while not self._stop_event.wait(self.every):
            self.beat()

    def stop(self) -> None:
        """End the thread after its current beat."""
        self._stop_event.set()

    def beat(self, *, starting: bool = False) -> None:
        """One heartbeat; never raises (a failed beat is logged and the next one retries)."""
        try:
            db = get_db()
            health.touch_worker(db, self.worker, self.workflows, starting=starting)
            last = health.last_reaper_pass(db)
            silent = (
                time.monotonic() - self.started
                if last is None
                else (db.now() - last).total_seconds()
            )
        except Exception as exc:
            now = time.monotonic()
            if self._failed_at is None or now - self._failed_at >= _REPEAT_SECONDS:
                self._failed_at = now
                log.warning("worker heartbeat failed: %s", " ".join(str(exc).split())[:300])
            return
        self._failed_at = None
        self._check_reaper(silent, ever=last is not None)

    def _check_reaper(self, silent: float, *, ever: bool) -> None:
        now = time.monotonic()
        if silent <= self.limit:
            if self._alarm_at is not None:
                log.info("reaper passes are recorded again")
                self._alarm_at = None
            return
        if self._alarm_at is not None and now - self._alarm_at < _REPEAT_SECONDS:
            return
        self._alarm_at = now
        since = "" if ever else " (none recorded since this worker started)"
        log.error(
            "no reaper pass for %d s%s: retries, sleeps, approval expiries and lost "
            "wake-ups are not being handled; run `celery -A tasks beat` or a worker "
            "with -B",
            silent,
            since,
        )
