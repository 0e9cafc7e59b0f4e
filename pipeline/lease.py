"""Keeps the lease of the step running in this process alive while it works.

One daemon thread per process renews every third of the lease; a step that runs for minutes
keeps its run, while a process that dies (or is paused past the lease) loses it to the next
claim, whose higher fencing token makes the old commit match nothing.
"""

from __future__ import annotations

import logging
import os
import threading

from pipeline.store import Database
from pipeline.store.steps import renew_lease

log = logging.getLogger("ravel.lease")


class LeaseKeeper:
    """Renews the lease held by this process (at most one step runs per process)."""

    def __init__(self, db: Database, lease_seconds: float) -> None:
        self._db = db
        self._seconds = lease_seconds
        self._held: tuple[str, int] | None = None
        self._lost = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def hold(self, run_id: str, fencing: int) -> None:
        """Start renewing the lease of ``run_id`` claimed with ``fencing``."""
        with self._cond:
            self._held, self._lost = (run_id, fencing), False
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="ravel-lease", daemon=True)
                self._thread.start()
            self._cond.notify()

    def release(self) -> bool:
        """Stop renewing; return False if the lease was lost while held."""
        with self._cond:
            self._held = None
            return not self._lost

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait(timeout=self._seconds / 3)
                held = self._held
            if held is None:
                continue
            try:
                ok = renew_lease(self._db, held[0], held[1], self._seconds)
            except Exception:  # a failed renewal is retried next tick; the claim is fenced
                log.warning("could not renew the lease of run %s", held[0], exc_info=True)
                continue
            if not ok:
                with self._cond:
                    if self._held == held:
                        self._lost = True
                log.warning("lost the lease of run %s (cancelled or taken over)", held[0])


_keepers: dict[int, LeaseKeeper] = {}


def keeper(db: Database, lease_seconds: float) -> LeaseKeeper:
    """This process's lease keeper (threads do not survive a fork: one per pid)."""
    pid = os.getpid()
    found = _keepers.get(pid)
    if found is None:
        found = _keepers[pid] = LeaseKeeper(db, lease_seconds)
    return found
