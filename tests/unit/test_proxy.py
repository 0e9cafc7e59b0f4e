"""The fault-injecting TCP proxy, against a real echo server on 127.0.0.1."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from pipeline.testing.proxy import Proxy
from pipeline.testing.servers import free_port


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[int]:
    """An echo server; yields its port."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(echo: int) -> Iterator[Proxy]:
    p = Proxy("127.0.0.1", echo)
    try:
        yield p
    finally:
        p.close()


def _client(p: Proxy) -> socket.socket:
    return socket.create_connection(p.address, timeout=5)


def _roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def _dropped(sock: socket.socket) -> bool:
    """Whether the peer closed or reset the connection."""
    try:
        sock.sendall(b"x")
        return sock.recv(16) == b""
    except OSError:
        return True


def _refused(p: Proxy) -> bool:
    """Whether a new connection fails at once (at connect, or at the first exchange)."""
    try:
        sock = _client(p)
    except OSError:
        return True
    with sock:
        return _dropped(sock)


def _wait(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.02)
    return False


def test_forwards_both_ways_and_counts(proxy: Proxy) -> None:
    with _client(proxy) as c:
        assert _roundtrip(c, b"hello" * 1000) == b"hello" * 1000
        assert proxy.stats.active == 1
    assert _wait(lambda: proxy.stats.active == 0)
    stats = proxy.stats
    assert (stats.accepted, stats.refused, stats.cut) == (1, 0, 0)
    assert stats.bytes_up == stats.bytes_down == 5000


def test_an_orderly_close_loses_no_data(proxy: Proxy) -> None:
    with _client(proxy) as c:
        c.sendall(b"last words")
        c.shutdown(socket.SHUT_WR)  # the echo server answers, then sees EOF and closes
        got = b""
        while chunk := c.recv(1024):
            got += chunk
    assert got == b"last words"


def test_cut_resets_live_connections_and_refuses_new_ones_until_heal(proxy: Proxy) -> None:
    first, second = _client(proxy), _client(proxy)
    assert _roundtrip(first, b"a") == b"a" and _roundtrip(second, b"b") == b"b"

    assert proxy.cut() == 2
    assert _dropped(first) and _dropped(second)
    assert proxy.is_cut
    assert _refused(proxy)

    proxy.heal()
    with _client(proxy) as after:
        assert _roundtrip(after, b"back") == b"back"
    stats = proxy.stats
    assert (stats.cut, stats.refused, stats.accepted) == (2, 1, 3)
    first.close()
    second.close()


def test_a_timed_cut_heals_by_itself(proxy: Proxy) -> None:
    proxy.cut(for_seconds=0.3)
    assert _refused(proxy)
    time.sleep(0.4)
    assert not proxy.is_cut
    with _client(proxy) as after:
        assert _roundtrip(after, b"ok") == b"ok"


def test_delay_slows_each_chunk_until_heal(proxy: Proxy) -> None:
    with _client(proxy) as c:
        proxy.delay(0.2)
        began = time.monotonic()
        assert _roundtrip(c, b"slow") == b"slow"
        assert time.monotonic() - began >= 0.4  # held once each way
        proxy.heal()
        began = time.monotonic()
        assert _roundtrip(c, b"fast") == b"fast"
        assert time.monotonic() - began < 0.2


def test_connections_over_the_bound_are_refused(echo: int) -> None:
    with Proxy("127.0.0.1", echo, max_connections=2) as p:
        kept = [_client(p), _client(p)]
        assert all(_roundtrip(c, b"k") == b"k" for c in kept)
        assert _refused(p)
        assert p.stats.refused == 1
        for c in kept:
            c.close()


def test_an_unreachable_upstream_drops_the_client() -> None:
    with Proxy("127.0.0.1", free_port()) as p:
        assert _refused(p)
        assert p.stats.refused == 1


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.1", "8.8.8.8", "example.com", ""])
def test_only_loopback_upstreams_are_allowed(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        Proxy(host, 80)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost"])
def test_loopback_upstreams_are_accepted(host: str, echo: int) -> None:
    with Proxy(host, echo) as p:
        assert p.upstream[0].startswith("127.")


def test_close_resets_connections_stops_listening_and_ends_its_threads(echo: int) -> None:
    p = Proxy("127.0.0.1", echo)
    live = _client(p)
    assert _roundtrip(live, b"x") == b"x"
    p.close()
    assert _dropped(live)
    live.close()
    with pytest.raises(ConnectionRefusedError):
        _client(p)
    assert _wait(
        lambda: not [t for t in threading.enumerate() if t.name.startswith(f"proxy-{p.port}")]
    )


def test_a_proxy_closes_itself_after_its_lifetime(echo: int) -> None:
    p = Proxy("127.0.0.1", echo, lifetime=0.3)
    try:
        time.sleep(0.5)
        with pytest.raises(ConnectionRefusedError):
            _client(p)
    finally:
        p.close()
