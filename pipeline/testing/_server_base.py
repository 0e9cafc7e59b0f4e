"""What the private servers of :mod:`pipeline.testing.servers` share.

Each runs on its own ports, with its files under a folder the caller gives: never the shared
services on the standard ports, so flushing, SIGKILLing or restarting one harms nobody else.
Every server has ``start()``, ``stop()`` (graceful), ``kill()`` (SIGKILL, like a crash),
``restart()``, ``url`` and ``close()``; a start that does not become ready in time raises
:class:`ServerError` with the end of the server's log. ``close()`` runs at interpreter exit for
any server still open, so no process outlives its creator by accident.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

LOOPBACK = "127.0.0.1"
_OPEN: weakref.WeakSet[Server] = weakref.WeakSet()


class ServerError(RuntimeError):
    """A private server could not be started, stopped or asked something."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_open(port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, session id) of a process, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces
    return fields[0], int(fields[1]), int(fields[3])


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not count)."""
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def processes(match: Callable[[int, int], bool]) -> list[int]:
    """Live pids whose (parent pid, session id) satisfy ``match``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) and st[0] != "Z" and match(*st[1:]):
            found.append(int(entry))
    return found


def kill_all(pids: Sequence[int], timeout: float = 10.0) -> None:
    """SIGKILL ``pids`` and wait until every one is gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise ServerError(f"processes {[p for p in pids if alive(p)]} survived SIGKILL")
        time.sleep(0.02)


def spawn(argv: list[str], env: dict[str, str] | None, log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (so its whole tree can be killed), output to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def end_session(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL a process started by :func:`spawn` and everything left in its session."""
    if proc is None:
        return
    kill_all([proc.pid, *processes(lambda _ppid, sid: sid == proc.pid)])
    proc.wait(timeout=10)


class Server:
    """What the private servers share: a folder, a port, the life cycle and readiness."""

    start_timeout = 30.0

    def __init__(self, folder: Path, port: int | None = None) -> None:
        """Keep the server's files in ``folder``; listen on ``port`` (default: a free one)."""
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.started_in: float | None = None  # seconds the last start() took, until ready
        _OPEN.add(self)

    @property
    def url(self) -> str:
        """The URL clients connect with."""
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        """The server's own log."""
        raise NotImplementedError

    def running(self) -> bool:
        """Whether the server process is alive (not necessarily ready)."""
        raise NotImplementedError

    def _launch(self, timeout: float) -> None:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down gracefully, as an operator would; SIGKILL if that takes over ``timeout``."""
        raise NotImplementedError

    def kill(self) -> None:
        """SIGKILL every process of the server at once, like a crash or an OOM kill."""
        raise NotImplementedError

    def start(self, timeout: float | None = None) -> None:
        """Start (a no-op if running) and wait until it serves; raise ServerError if not."""
        if self.running():
            return
        timeout = timeout or self.start_timeout
        began = time.monotonic()
        try:
            self._launch(timeout)
        except BaseException:
            self.kill()  # whatever half-started (a postmaster pg_ctl gave up waiting for)
            raise
        deadline = began + timeout
        while not self._ready():
            if not self.running():
                raise ServerError(f"{self} exited while starting; {self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(f"{self} was not ready after {timeout:g}s; {self.log_tail()}")
            time.sleep(0.05)
        self.started_in = time.monotonic() - began

    def restart(self, *, graceful: bool = True) -> None:
        """Stop (or kill, if not ``graceful``) and start again on the same port and data."""
        if graceful:
            self.stop()
        else:
            self.kill()
        self.start()

    def close(self) -> None:
        """Stop the server for good; files under ``folder`` stay for whoever reads the logs."""
        try:
            self.stop(timeout=10)
        except ServerError:
            self.kill()
        _OPEN.discard(self)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return f"no log at {self.log_path}"
        return f"the end of {self.log_path}:\n{text}"

    def __repr__(self) -> str:
        """The kind of server, its port and folder."""
        return f"{type(self).__name__}({LOOPBACK}:{self.port}, {self.folder})"

    def __enter__(self) -> Server:
        """Use as a context manager: closed on exit."""
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the server."""
        self.close()


class ChildServer(Server):
    """A server whose process is a child of this one, in its own session."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        """See :class:`Server`."""
        super().__init__(folder, port)
        self.proc: subprocess.Popen[bytes] | None = None

    def running(self) -> bool:
        """Whether the server process is alive (not necessarily ready)."""
        return self.proc is not None and self.proc.poll() is None

    def _shutdown(self, timeout: float) -> None:
        """Ask the server to exit (SIGTERM unless a server knows better)."""
        if self.proc is not None:
            self.proc.terminate()

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down gracefully; SIGKILL if that takes over ``timeout``."""
        if self.running() and self.proc is not None:
            with contextlib.suppress(ServerError, subprocess.SubprocessError):
                self._shutdown(timeout)
                self.proc.wait(timeout=timeout)
        self.kill()  # whatever is left of the session: nothing after a clean exit

    def kill(self) -> None:
        """SIGKILL the server and every process of its session."""
        end_session(self.proc)


def which(name: str, install: str) -> str:
    """The path of program ``name``; ServerError saying how to ``install`` it if missing."""
    found = shutil.which(name)
    if found is None:
        raise ServerError(f"{name} is not installed ({install})")
    return found


@atexit.register
def _close_open_servers() -> None:
    for server in list(_OPEN):
        with contextlib.suppress(Exception):
            server.close()
