"""Real Celery worker and beat processes as children of this one.

For the demo, end-to-end tests and benchmarks: each process runs in its own session, so the
caller can SIGKILL its whole process group at a chosen moment, the way a crash or an OOM kill
would. It starts the ``celery`` command; it does not import Celery. Private Redis, PostgreSQL
and RabbitMQ servers are in :mod:`pipeline.testing.servers`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pipeline.metrics import multiproc

# Re-exported: they lived here before the private servers got a module of their own.
from pipeline.testing.servers import RedisServer, free_port

__all__ = ["ROOT", "Cluster", "Proc", "RedisServer", "free_port", "wait_for"]

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Proc:
    """A child process with its log file; killed with its whole process group."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT
    ) -> None:
        """Start ``argv`` in its own session with ``env`` in ``cwd``, output to ``log``."""
        self.name = name
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        return self.popen.pid

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process group (the worker and its pool children)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
            self._log.close()

    def stop(self, timeout: float = 45.0) -> None:
        """Warm shutdown: SIGTERM to the main process only, as ``docker stop`` and Kubernetes
        send it; SIGKILL the group after ``timeout``.

        Not to the group: Celery's pool processes keep SIGTERM's default action, so a group
        SIGTERM (systemd's default ``KillMode=control-group``) kills a step mid-way, and the
        reaper re-drives it after its lease instead of it committing.
        """
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)
        self.kill(signal.SIGKILL)  # whatever is left of its group


class Cluster:
    """The processes of one test: workers and beat sharing one environment.

    Args:
        env: RAVEL_* settings shared by every process (database, broker, queue, workflows).
        logs: folder for the processes' logs.
    """

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        """Share ``env`` with every process; write their logs under ``logs``."""
        self.env = env
        self.logs = logs
        self.procs: list[Proc] = []

    def _env(self, extra: dict[str, str] | None) -> dict[str, str]:
        # Nothing of this process's settings, nor a metric folder it was pointed at: each
        # worker of the cluster keeps its metrics in its own folder under the cluster's home.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RAVEL_", "CELERY_", "OPENAI_")) and k != multiproc.ENV
        }
        env.update(self.env)
        env.update(extra or {})
        env["PYTHONPATH"] = str(ROOT)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def worker(
        self,
        extra_env: dict[str, str] | None = None,
        concurrency: int = 2,
        ready: bool = True,
        beat: bool = False,
    ) -> Proc:
        """Start ``celery -A tasks worker`` (prefork) on the test's queue."""
        name = f"w{len(self.procs)}-{uuid.uuid4().hex[:6]}"
        env = self._env(extra_env)
        argv = [
            CELERY,
            "-A",
            "tasks",
            "worker",
            "--pool",
            "prefork",
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "-E",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ]
        # No -Q: the app's task_queues are the test's private queues (the default queue,
        # the reaper's, one per workflow version's step queue).
        if beat:
            argv += ["-B", "-s", str(self.logs / f"{name}-beat-schedule")]
        proc = Proc(name, argv, env, self.logs / f"{name}.log")
        self.procs.append(proc)
        if ready:
            wait_for(lambda: "ready." in proc.log() or not proc.alive(), 60, f"{name} ready")
            assert proc.alive(), f"worker {name} died at start:\n{proc.log()[-3000:]}"
        return proc

    def beat(self, extra_env: dict[str, str] | None = None) -> Proc:
        """Start ``celery -A tasks beat`` (the reaper's schedule)."""
        name = f"beat{len(self.procs)}"
        argv = [
            CELERY,
            "-A",
            "tasks",
            "beat",
            "--loglevel",
            "INFO",
            "-s",
            str(self.logs / f"{name}-schedule"),
        ]
        proc = Proc(name, argv, self._env(extra_env), self.logs / f"{name}.log")
        self.procs.append(proc)
        return proc

    def celery(
        self,
        name: str,
        args: list[str],
        extra_env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> Proc:
        """Start ``celery -A tasks <args>`` (flower, a worker in another folder ...)."""
        proc = Proc(
            name,
            [CELERY, "-A", "tasks", *args],
            self._env(extra_env),
            self.logs / f"{name}.log",
            cwd=cwd,
        )
        self.procs.append(proc)
        return proc

    def stop_all(self, sig: int = signal.SIGKILL) -> None:
        """Stop every process of the test."""
        for proc in self.procs:
            proc.kill(sig)
        self.procs = [p for p in self.procs if p.alive()]

    def logs_tail(self, chars: int = 4000) -> str:
        """The end of every process log, for assertion messages."""
        return "\n".join(f"--- {p.name}\n{p.log()[-chars:]}" for p in self.procs)
