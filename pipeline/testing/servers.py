"""Private Redis, PostgreSQL and RabbitMQ servers that a test or the nemesis may break.

Each runs on its own ports, with its files under a folder the caller gives: never the shared
services on the standard ports, so flushing, SIGKILLing or restarting one harms nobody else.

- :class:`RedisServer`: ``redis-server`` as a child process;
- :class:`PostgresServer`: ``initdb`` + ``pg_ctl`` (as the ``postgres`` user when run as root);
- :class:`RabbitServer`: a RabbitMQ node with its own name, ports, cookie and epmd.

Each has ``start()``, ``stop()`` (graceful), ``kill()`` (SIGKILL, like a crash),
``restart()``, ``url`` and ``close()``, and is a context manager. A start that does not become
ready in time raises :class:`ServerError` with the end of the server's log; ``started_in`` says
how long the last start took. Servers still open at interpreter exit are closed then.
"""

from __future__ import annotations

import socket
from pathlib import Path

from pipeline.testing._postgres import PostgresServer
from pipeline.testing._rabbit import RabbitServer
from pipeline.testing._server_base import (
    LOOPBACK,
    ChildServer,
    Server,
    ServerError,
    free_port,
    port_open,
    spawn,
    which,
)

__all__ = [
    "LOOPBACK",
    "PostgresServer",
    "RabbitServer",
    "RedisServer",
    "Server",
    "ServerError",
    "free_port",
    "port_open",
]


class RedisServer(ChildServer):
    """A private redis-server, for tests that flush, kill or restart the broker.

    Args:
        folder: its working folder (append-only file, log).
        port: default a free one.
        appendonly: keep an append-only file, so data survives a restart (as a production
            broker would be configured); off, a restart loses everything, as a flush does.
        start: start now (the default), else call :meth:`start`.
    """

    start_timeout = 10.0

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        *,
        appendonly: bool = False,
        start: bool = True,
    ) -> None:
        """See the class docstring."""
        super().__init__(folder, port)
        self.appendonly = appendonly
        if start:
            self.start()

    @property
    def url(self) -> str:
        """The broker URL of this server."""
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        """The server's log."""
        return self.folder / "redis.log"

    def _launch(self, timeout: float) -> None:
        binary = which("redis-server", "apt-get install redis-server")
        self.proc = spawn(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                LOOPBACK,
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--dir",
                str(self.folder),
                "--maxmemory-policy",
                "noeviction",
            ],
            None,
            self.log_path,
        )

    def _ready(self) -> bool:
        try:
            return self.command("PING", timeout=0.5).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str, timeout: float = 5.0) -> bytes:
        """Send one inline command and return the raw reply."""
        with socket.create_connection((LOOPBACK, self.port), timeout=timeout) as s:
            s.sendall((" ".join(args) + "\r\n").encode())
            return s.recv(65536)

    def flushall(self) -> None:
        """Delete every key: every queued message and unacked delivery is gone."""
        reply = self.command("FLUSHALL")
        if not reply.startswith(b"+OK"):
            raise ServerError(f"FLUSHALL on {self} answered {reply!r}")
