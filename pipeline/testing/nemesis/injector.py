"""Applies the fault schedule: each fault at its time, on its own thread, logged when it starts
and when it ends. Faults on the same thing (a worker slot, the broker, PostgreSQL) take turns.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.testing.nemesis.backends import Broker, Database
from pipeline.testing.nemesis.fleet import Fleet
from pipeline.testing.nemesis.jsonlog import JsonLog
from pipeline.testing.nemesis.schedule import Fault


class Injector:
    """Runs a schedule against a fleet, a broker and a database."""

    def __init__(
        self,
        schedule: list[Fault],
        fleet: Fleet,
        broker: Broker,
        database: Database,
        log: JsonLog,
        queue: str,
        once_dir: Path,
    ) -> None:
        """Inject ``schedule``; ``queue`` is the step queue a RabbitMQ fault deletes."""
        self.schedule = schedule
        self.fleet = fleet
        self.broker = broker
        self.database = database
        self.log = log
        self.queue = queue
        self.once_dir = once_dir
        self.injected: Counter[str] = Counter()
        self.errors: list[str] = []
        self._locks: dict[str, threading.Lock] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def start(self) -> None:
        """Start the timer thread (time 0 is now)."""
        thread = threading.Thread(target=self._timeline, daemon=True, name="nemesis-faults")
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Start no further fault; let those already launched (some wait for their turn on
        a busy worker slot or server) be applied and end."""
        self._stop.set()
        for thread in list(self._threads):
            thread.join(180)

    def _timeline(self) -> None:
        began = time.monotonic()
        for fault in self.schedule:
            if self._stop.wait(max(0.0, began + fault.at - time.monotonic())):
                return
            thread = threading.Thread(
                target=self._apply, args=(fault,), daemon=True, name=f"nemesis-{fault.kind}"
            )
            self._threads.append(thread)
            thread.start()

    def _apply(self, fault: Fault) -> None:
        lock = self._locks.setdefault(fault.lock, threading.Lock())
        with lock:
            entry = {
                "fault": fault.kind,
                "target": fault.target,
                "hold": round(fault.hold, 2),
                "detail": fault.detail,
            }
            self.log.write("start", **entry)
            try:
                extra = self._inject(fault)
            except Exception as exc:  # report it; the run goes on
                self.errors.append(f"{fault.kind}: {type(exc).__name__}: {exc}")
                self.log.write("failed", **entry, error=f"{type(exc).__name__}: {exc}"[:500])
                return
            self.injected[fault.kind] += 1
            self.log.write("end", **entry, **extra)

    def _inject(self, fault: Fault) -> dict[str, Any]:
        kind = fault.kind
        if fault.target is not None:
            return self._on_worker(fault)
        if kind == "broker_restart":
            self.broker.restart(fault.hold, graceful=fault.hold > 1.5)
        elif kind == "broker_flush":
            return {"how": self.broker.lose_messages(self.queue)}
        elif kind == "pg_restart":
            self.database.restart(fault.hold, graceful=fault.hold > 1.5)
        elif kind.startswith(("cut_", "delay_")):
            backend = self.database if kind.endswith("pg") else self.broker
            if kind.startswith("cut_"):
                backend.proxy.cut()
            else:
                backend.proxy.delay(float(fault.detail))
            time.sleep(fault.hold)
            backend.proxy.heal()
        else:
            raise ValueError(f"unknown fault {kind!r}")
        return {}

    def _on_worker(self, fault: Fault) -> dict[str, Any]:
        assert fault.target is not None
        slot = self.fleet.slots[fault.target]
        with slot.lock:
            proc = slot.proc
            name = proc.name if proc is not None else None
            if fault.kind == "worker_stop":
                if proc is None or not proc.alive():
                    return {"worker": name, "skipped": "not running"}
                proc.kill(signal.SIGSTOP)
                time.sleep(fault.hold)
                proc.kill(signal.SIGCONT)
                return {"worker": name}
            slot.down = True
            if proc is not None and fault.kind in ("worker_term", "deploy_v2"):
                proc.stop()
            elif proc is not None:
                proc.kill(signal.SIGKILL)
            time.sleep(fault.hold)
            extra: dict[str, str] = {}
            if fault.kind == "deploy_v2":
                self.fleet.deployed = True
            if fault.kind == "worker_kill_at":
                folder = self.once_dir / f"{slot.name}-{int(time.time() * 1000)}"
                extra = {
                    "RAVEL_FAULTS": f"{fault.detail}=kill",
                    "RAVEL_FAULTS_ONCE_DIR": str(folder),
                }
            new = self.fleet.start(slot, extra)
            return {"worker": name, "new": new.name}
