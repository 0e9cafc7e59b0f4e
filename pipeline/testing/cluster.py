"""Real Celery worker, beat and Redis processes as children of this one.

For the demo, end-to-end tests and benchmarks: each process runs in its own session, so the
caller can SIGKILL its whole process group at a chosen moment, the way a crash or an OOM kill
would. It starts the ``celery`` command; it does not import Celery.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
            argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
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

    def stop(self) -> None:
        """Warm shutdown, falling back to SIGKILL."""
        self.kill(signal.SIGTERM)


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
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RAVEL_", "CELERY_", "OPENAI_"))}
        env.update(self.env)
        env.update(extra or {})
        env["PYTHONPATH"] = str(ROOT)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def worker(
        self, extra_env: dict[str, str] | None = None, concurrency: int = 2, ready: bool = True,
        beat: bool = False,
    ) -> Proc:
        """Start ``celery -A tasks worker`` (prefork) on the test's queue."""
        name = f"w{len(self.procs)}-{uuid.uuid4().hex[:6]}"
        env = self._env(extra_env)
        argv = [CELERY, "-A", "tasks", "worker", "--pool", "prefork", "-c", str(concurrency),
                "-n", f"{name}@%h", "-E", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "--loglevel", "INFO"]
        if "RAVEL_DEFAULT_QUEUE" in env:
            argv += ["-Q", env["RAVEL_DEFAULT_QUEUE"]]
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
        argv = [CELERY, "-A", "tasks", "beat", "--loglevel", "INFO",
                "-s", str(self.logs / f"{name}-schedule")]
        proc = Proc(name, argv, self._env(extra_env), self.logs / f"{name}.log")
        self.procs.append(proc)
        return proc

    def celery(
        self, name: str, args: list[str], extra_env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> Proc:
        """Start ``celery -A tasks <args>`` (flower, a worker in another folder ...)."""
        proc = Proc(name, [CELERY, "-A", "tasks", *args], self._env(extra_env),
                    self.logs / f"{name}.log", cwd=cwd)
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


class RedisServer:
    """A private redis-server on a free port, for tests that flush or restart the broker."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        """Start the server on ``port`` (default: a free one), its files under ``folder``."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = port or free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(folder), "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for(self._ping, 10, "redis-server to accept connections")

    @property
    def url(self) -> str:
        """The broker URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """Send one inline command and return the raw reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall((" ".join(args) + "\r\n").encode())
            return s.recv(65536)

    def stop(self) -> None:
        """Kill the server."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
