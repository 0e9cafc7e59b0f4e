"""A small TCP proxy on 127.0.0.1 that cuts and slows connections on demand.

The nemesis puts one between the workers and each server: :meth:`Proxy.cut` is a network
partition as the clients see it (every live connection reset at once, new ones refused until
:meth:`Proxy.heal` or the given time has passed), :meth:`Proxy.delay` a slow network.

Only loopback upstreams are allowed: the proxy is for tests on this machine and must never
carry traffic anywhere else. Its threads are daemons, the number of connections is bounded,
and it closes itself at interpreter exit or after ``lifetime`` seconds.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import socket
import struct
import threading
import time
import weakref
from dataclasses import dataclass, replace
from types import TracebackType

LOOPBACK = "127.0.0.1"
CHUNK = 65536
_OPEN: weakref.WeakSet[Proxy] = weakref.WeakSet()


@dataclass(frozen=True)
class ProxyStats:
    """What a proxy did so far.

    Attributes:
        accepted: connections forwarded to the upstream.
        refused: connections closed at once (cut, over the bound, or upstream unreachable).
        cut: live connections closed by :meth:`Proxy.cut`.
        active: connections open now.
        bytes_up: bytes forwarded from clients to the upstream.
        bytes_down: bytes forwarded from the upstream to clients.
    """

    accepted: int = 0
    refused: int = 0
    cut: int = 0
    active: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


def loopback_only(host: str) -> str:
    """``host`` as a loopback IP address; ValueError for anything else (never resolved)."""
    if host == "localhost":
        return LOOPBACK
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"proxy upstream {host!r}: give a loopback IP address") from None
    if not address.is_loopback:
        raise ValueError(f"proxy upstream {host}: only loopback addresses are allowed")
    return str(address)


def _abort(sock: socket.socket) -> None:
    """Reset the connection (RST, not an orderly FIN) and wake any thread reading it."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Link:
    """One client connection and its upstream connection, pumped by two threads."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.lock = threading.Lock()
        self.pumps_left = 2
        self.aborted = False

    def abort(self) -> None:
        with self.lock:
            self.aborted = True
        _abort(self.client)
        _abort(self.upstream)

    def pump_done(self) -> bool:
        """Called by each pump as it ends; True for the last one, which closes the sockets."""
        with self.lock:
            self.pumps_left -= 1
            last = self.pumps_left == 0
        if last:
            self.client.close()
            self.upstream.close()
        return last


class Proxy:
    """Forward 127.0.0.1:``port`` to a loopback upstream; cut and delay on demand.

    Args:
        upstream_host: a loopback address (or ``localhost``); anything else is refused.
        upstream_port: the server's port.
        port: where to listen; default a free port.
        max_connections: connections open at once; more are refused.
        lifetime: close by itself after this many seconds (None: at interpreter exit).
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        port: int = 0,
        max_connections: int = 256,
        lifetime: float | None = None,
    ) -> None:
        """See the class docstring."""
        self.upstream = (loopback_only(upstream_host), upstream_port)
        self.max_connections = max_connections
        self._listener = socket.create_server((LOOPBACK, port), backlog=128)
        self._listener.settimeout(0.1)  # so the accept loop sees close() promptly
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._stats = ProxyStats()
        self._cut_until = 0.0
        self._delay = 0.0
        self._closed = threading.Event()
        self._deadline = None if lifetime is None else time.monotonic() + lifetime
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"proxy-{self.port}", daemon=True
        )
        self._acceptor.start()
        _OPEN.add(self)

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect."""
        return LOOPBACK, self.port

    @property
    def stats(self) -> ProxyStats:
        """A snapshot of the counters."""
        with self._lock:
            return replace(self._stats, active=len(self._links))

    @property
    def is_cut(self) -> bool:
        """Whether connections are being refused now."""
        return time.monotonic() < self._cut_until

    def cut(self, for_seconds: float | None = None) -> int:
        """Reset every live connection, both sides, and refuse new ones until :meth:`heal`
        (or for ``for_seconds``). Returns how many connections were cut."""
        with self._lock:
            self._cut_until = (
                float("inf") if for_seconds is None else (time.monotonic() + for_seconds)
            )
            links = list(self._links)
            self._stats = replace(self._stats, cut=self._stats.cut + len(links))
        for link in links:
            link.abort()
        return len(links)

    def delay(self, seconds: float) -> None:
        """Hold every forwarded chunk, each way, for ``seconds`` (0: no delay)."""
        self._delay = max(0.0, seconds)

    def heal(self) -> None:
        """Accept connections again and forward without delay."""
        self._cut_until = 0.0
        self._delay = 0.0

    def close(self) -> None:
        """Stop listening and reset every connection."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # stop listening now, not when accept
        with contextlib.suppress(OSError):  # (polling it) lets go of the socket
            self._listener.close()
        if threading.current_thread() is not self._acceptor:
            self._acceptor.join(timeout=1)
        with self._lock:
            links = list(self._links)
        for link in links:
            link.abort()
        _OPEN.discard(self)

    def _count(self, **more: int) -> None:
        with self._lock:
            self._stats = replace(
                self._stats, **{name: getattr(self._stats, name) + n for name, n in more.items()}
            )

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            if self._deadline is not None and time.monotonic() > self._deadline:
                self.close()
                return
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed
                return
            self._open(client)

    def _open(self, client: socket.socket) -> None:
        with self._lock:
            full = len(self._links) >= self.max_connections
        if full or self.is_cut:
            self._refuse(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            self._refuse(client)  # the server is down: the client sees its connection drop
            return
        client.settimeout(None)
        upstream.settimeout(None)
        link = _Link(client, upstream)
        with self._lock:
            self._links.add(link)
            self._stats = replace(self._stats, accepted=self._stats.accepted + 1)
        for src, dst, counter in ((client, upstream, "bytes_up"), (upstream, client, "bytes_down")):
            threading.Thread(
                target=self._pump,
                args=(link, src, dst, counter),
                name=f"proxy-{self.port}-pump",
                daemon=True,
            ).start()

    def _refuse(self, client: socket.socket) -> None:
        self._count(refused=1)  # first: whoever sees the drop may read the counter at once
        _abort(client)
        client.close()

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket, counter: str) -> None:
        try:
            while not link.aborted:
                data = src.recv(CHUNK)
                if not data:  # an orderly close: pass it on, let the other way finish
                    dst.shutdown(socket.SHUT_WR)
                    break
                if self._delay:
                    time.sleep(self._delay)
                if link.aborted:
                    break
                dst.sendall(data)
                self._count(**{counter: len(data)})
        except OSError:
            link.abort()  # one side failed: reset both, as the peer of a dead host would see
        if link.pump_done():
            with self._lock:
                self._links.discard(link)

    def __repr__(self) -> str:
        """Where it listens and what it forwards to."""
        return f"Proxy({LOOPBACK}:{self.port} -> {self.upstream[0]}:{self.upstream[1]})"

    def __enter__(self) -> Proxy:
        """Use as a context manager: closed on exit."""
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the proxy."""
        self.close()


@atexit.register
def _close_open_proxies() -> None:
    for proxy in list(_OPEN):
        proxy.close()
