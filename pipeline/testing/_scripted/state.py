"""What all connections of one server share."""

from __future__ import annotations

import contextlib
import socket
import threading

from pipeline.testing._scripted.script import Script
from pipeline.testing._scripted.stats import Ledger


class ServerState:
    """What all connections of one server share: the script, the ledger and the stop signal."""

    def __init__(self, script: Script, *, log_requests: bool = False) -> None:
        """Serve ``script``; log requests to stderr if ``log_requests``."""
        self.script = script
        self.ledger = Ledger()
        self.stopping = threading.Event()
        self.log_requests = log_requests
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def track(self, connection: socket.socket) -> None:
        """Remember an open client connection."""
        with self._lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        """Forget a closed client connection."""
        with self._lock:
            self._connections.discard(connection)

    def cut_connections(self) -> None:
        """Shut down every open connection (keep-alive ones would outlive the server)."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
