"""Keeps the lease of the step running in this process alive while it works.

One daemon thread per process renews every third of the lease; a step that runs for minutes
keeps its run, while a process that dies (or is paused past the lease) loses it to the next
claim, whose higher fencing token makes the old commit match nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from pipeline.store import Database
from pipeline.store.steps import renew_lease

log = logging.getLogger("ravel.lease")


class LeaseKeeper:
    """Renews the lease held by this process (at most one step runs per process)."""

    def __init__(self, db: Database, lease_seconds: float) -> None:
        self._db = db
        self._seconds = lease_seconds
        self._held: tuple[str, int, str] | None = None  # (run, fencing token, owner)
        self._renew_at = 0.0  # monotonic time of the held lease's next renewal
        self._lost = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def hold(self, run_id: str, fencing: int, owner: str) -> None:
        """Start renewing the lease of ``run_id`` claimed with ``fencing`` by ``owner``."""
        with self._cond:
            self._held, self._lost = (run_id, fencing, owner), False
            self._renew_at = time.monotonic() + self._seconds / 3
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="ravel-lease", daemon=True)
                self._thread.start()

    def configure(self, db: Database, lease_seconds: float) -> None:
        """Use this database and lease length from now on (they change with the settings)."""
        with self._cond:
            changed = lease_seconds != self._seconds
            self._db, self._seconds = db, lease_seconds
            if changed:  # a wait begun under the old length may outlast the new lease
                self._cond.notify()

    def is_lost(self) -> bool:
        """Whether a renewal found the held lease lost (cancelled, or taken over)."""
        with self._cond:
            return self._held is not None and self._lost

    def release(self) -> bool:
        """Stop renewing; return False if the lease was lost while held."""
        with self._cond:
            self._held = None
            return not self._lost

    def _loop(self) -> None:
        while True:
            with self._cond:
                timeout = self._seconds / 3
                if self._held is not None:
                    timeout = max(0.0, min(timeout, self._renew_at - time.monotonic()))
                self._cond.wait(timeout=timeout)
                held, db, seconds = self._held, self._db, self._seconds
                # Renew a third of a lease after the claim and every third after: never at
                # once (a step shorter than that costs no renewal statement).
                if held is None or time.monotonic() < self._renew_at:
                    continue
                self._renew_at = time.monotonic() + seconds / 3
            try:
                ok = renew_lease(db, *held, seconds)
            except Exception:  # a failed renewal is retried next tick; the claim is fenced
                log.warning("could not renew the lease of run %s", held[0], exc_info=True)
                continue
            if not ok:
                with self._cond:
                    # A renewal racing the step's own commit finds the run no longer running:
                    # only a lease still held is a lost one.
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
    else:
        # The process's database or lease length may have changed since (``reset_db``,
        # ``reload_settings``): renewing against the old ones would let the lease lapse.
        found.configure(db, lease_seconds)
    return found
