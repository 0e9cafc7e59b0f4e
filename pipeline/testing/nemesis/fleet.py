"""The nemesis's worker and beat processes: slots whose processes the faults kill and replace.

A slot is a worker position: a fault kills, stops or restarts its process, and a new process
(a new generation, with its own log) takes the slot. A supervisor thread restarts a worker
that died on its own (a fault point armed with ``RAVEL_FAULTS`` kills it) and logs the death
to the fault log. After the new-version deploy, every worker started serves versions 1 and 2.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

from pipeline.testing.cluster import CELERY, ROOT, Proc, wait_for
from pipeline.testing.nemesis.jsonlog import JsonLog

V1 = "pipeline.testing.nemesis.flow_v1"
V2 = "pipeline.testing.nemesis.flow_v2"
MUTANTS_APP = "pipeline.testing.nemesis.mutants"


class Slot:
    """One worker position and its current process."""

    def __init__(self, index: int) -> None:
        """Slot number ``index``; no process yet."""
        self.index = index
        self.proc: Proc | None = None
        self.generation = 0
        #: the harness took the process down on purpose: the supervisor leaves it alone
        self.down = False
        self.lock = threading.Lock()

    @property
    def name(self) -> str:
        """The current process's name (also its Celery node name and log file)."""
        return f"w{self.index}g{self.generation}"


class Fleet:
    """The workers and the beat process of one nemesis run."""

    def __init__(
        self,
        env: dict[str, str],
        logs: Path,
        faults: JsonLog,
        *,
        count: int,
        concurrency: int,
        mutant: str | None,
    ) -> None:
        """Processes get ``env`` (on top of this one's, without RAVEL_/CELERY_/OPENAI_)."""
        self.env = env
        self.logs = logs
        self.faults = faults
        self.concurrency = concurrency
        self.app = MUTANTS_APP if mutant else "tasks"
        self.mutant = mutant
        self.slots = [Slot(i) for i in range(count)]
        self.deployed = False
        self.beat_proc: Proc | None = None
        self.procs: list[Proc] = []
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RAVEL_", "CELERY_", "OPENAI_", "NEMESIS_"))
        }
        env.update(self.env)
        env["RAVEL_WORKFLOWS"] = f"{V1},{V2}" if self.deployed else V1
        if self.mutant:
            env["RAVEL_MUTANT"] = self.mutant
        env.update(extra or {})
        env["PYTHONPATH"] = str(ROOT)  # this checkout's code, even beside an installed Ravel
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(self, slot: Slot, extra: dict[str, str] | None = None, ready: bool = True) -> Proc:
        """Start a new process in ``slot`` (waiting until it is ready, unless told not to)."""
        slot.generation += 1
        env = self._env(extra)
        argv = [
            CELERY,
            "-A",
            self.app,
            "worker",
            "--pool",
            "prefork",
            "-c",
            str(self.concurrency),
            "-n",
            f"{slot.name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
            "-Q",
            env["RAVEL_DEFAULT_QUEUE"],
        ]
        proc = Proc(slot.name, argv, env, self.logs / f"{slot.name}.log", cwd=ROOT)
        self.procs.append(proc)
        slot.proc = proc
        slot.down = False
        if ready:
            _await_ready(proc)
        return proc

    def start_all(self) -> None:
        """Start every worker and beat, and the supervisor."""
        for slot in self.slots:  # started together, then awaited: a third of the wait
            self.start(slot, ready=False)
        for slot in self.slots:
            assert slot.proc is not None
            _await_ready(slot.proc)
        argv = [
            CELERY,
            "-A",
            "tasks",
            "beat",
            "--loglevel",
            "INFO",
            "-s",
            str(self.logs / "beat-schedule"),
        ]
        self.beat_proc = Proc("beat", argv, self._env(), self.logs / "beat.log")
        self.procs.append(self.beat_proc)
        self._supervisor = threading.Thread(
            target=self._supervise, daemon=True, name="nemesis-supervisor"
        )
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stop.wait(0.3):
            for slot in self.slots:
                proc = slot.proc
                if slot.down or proc is None or proc.alive() or not slot.lock.acquire(False):
                    continue
                try:
                    if slot.proc is proc and not slot.down:
                        self.faults.write(
                            "worker_died",
                            target=slot.index,
                            worker=proc.name,
                            code=proc.popen.returncode,
                            why=_last_words(proc),
                        )
                        time.sleep(0.5)
                        self.start(slot, ready=False)
                finally:
                    slot.lock.release()
            beat = self.beat_proc
            if beat is not None and not beat.alive() and not self._stop.is_set():
                self.faults.write("beat_died", code=beat.popen.returncode)
                argv = beat.popen.args
                assert isinstance(argv, list)
                self.beat_proc = Proc(
                    "beat", [str(a) for a in argv], self._env(), self.logs / "beat.log"
                )
                self.procs.append(self.beat_proc)

    def heal(self) -> None:
        """Resume stopped workers and start the missing ones (the end of the fault phase)."""
        for slot in self.slots:
            with slot.lock:
                if slot.proc is not None and slot.proc.alive():
                    slot.proc.kill(signal.SIGCONT)
                else:
                    self.start(slot, ready=False)

    def stop_all(self) -> None:
        """Stop the supervisor, then SIGKILL every process: the runs are at rest (or the
        checker reports those that are not), and a warm shutdown waits out Celery's soft
        shutdown timeout (30 s) for nothing."""
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
        for proc in self.procs:
            proc.kill(signal.SIGKILL)


def _await_ready(proc: Proc) -> None:
    """Wait until a worker is ready (or dead); give up quietly after 90 s: the broker may be
    down, and the worker connects when it comes back."""
    with contextlib.suppress(AssertionError):
        wait_for(lambda: "ready." in proc.log() or not proc.alive(), 90, f"{proc.name} ready")


def _last_words(proc: Proc) -> str:
    """The line a worker that exited on its own logged about why (CRITICAL), if any."""
    lines = [line for line in proc.log().splitlines() if "CRITICAL" in line]
    return lines[-1][-300:] if lines else ""
