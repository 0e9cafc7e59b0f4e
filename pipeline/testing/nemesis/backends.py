"""The servers the nemesis breaks: a private broker and a private PostgreSQL, each behind a proxy.

Workers and beat reach both through a :class:`~pipeline.testing.proxy.Proxy` (so the nemesis
can cut and slow their connections); the harness and its driver connect directly, as an
application on another network path would.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis

from pipeline.testing.proxy import Proxy
from pipeline.testing.servers import PostgresServer, RabbitServer, RedisServer, Server


class Backend:
    """A private server with its proxy."""

    server: Server

    def __init__(self, server: Server) -> None:
        """Put a proxy in front of ``server``."""
        self.server = server
        self.proxy = Proxy("127.0.0.1", server.port, max_connections=1024)

    @property
    def direct_url(self) -> str:
        """The server's URL, for the harness."""
        return self.server.url

    @property
    def proxied_url(self) -> str:
        """The URL through the proxy, for workers and beat."""
        raise NotImplementedError

    def restart(self, down: float, graceful: bool) -> None:
        """Stop (or kill) the server, keep it down ``down`` seconds, start it again."""
        if graceful:
            self.server.stop()
        else:
            self.server.kill()
        time.sleep(down)
        self.server.start()

    def close(self) -> None:
        """Stop the proxy and the server."""
        self.proxy.close()
        self.server.close()


class Database(Backend):
    """A private PostgreSQL cluster with the run store's database."""

    server: PostgresServer

    def __init__(self, folder: Path) -> None:
        """initdb under ``folder`` and start."""
        super().__init__(
            PostgresServer(folder, database="ravel", settings={"max_connections": "300"})
        )

    @property
    def proxied_url(self) -> str:
        """The database URL through the proxy."""
        return self.server.url_on(self.proxy.port)


class Broker(Backend):
    """A private Redis (with an append-only file, as production runs it) or RabbitMQ node."""

    def __init__(self, kind: str, folder: Path) -> None:
        """Start a ``redis`` or ``amqp`` broker under ``folder``."""
        self.kind = kind
        if kind == "redis":
            super().__init__(RedisServer(folder, appendonly=True))
        elif kind == "amqp":
            super().__init__(RabbitServer(folder))
        else:
            raise ValueError(f"unknown broker {kind!r}: use redis or amqp")

    @property
    def proxied_url(self) -> str:
        """The broker URL through the proxy."""
        if self.kind == "redis":
            return f"redis://127.0.0.1:{self.proxy.port}/0"
        return f"amqp://guest:guest@127.0.0.1:{self.proxy.port}//"

    def lose_messages(self, queue: str) -> str:
        """Lose every queued message: FLUSHALL on Redis; on RabbitMQ, delete the step queues
        (``queue`` and its per-version queues ``queue.vN``; the reaper's queue is kept)."""
        if isinstance(self.server, RedisServer):
            self.server.flushall()
            return "FLUSHALL"
        assert isinstance(self.server, RabbitServer)
        names = [
            q["name"]
            for q in self.server.list_queues()
            if q["name"] == queue or q["name"].startswith(f"{queue}.v")
        ]
        for name in names:
            self.server.delete_queue(name)
        return f"delete_queue {' '.join(names)}"

    def dump(self) -> str:
        """Everything the broker holds, as text (for the canary search): Redis keys and values,
        or RabbitMQ's queue list (message bodies cannot be read without consuming them)."""
        if isinstance(self.server, RabbitServer):
            return repr(self.server.list_queues())
        client = redis.Redis.from_url(self.server.url)
        parts: list[str] = []
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            value: object
            if kind == b"string":
                value = client.get(key)
            elif kind == b"list":
                value = client.lrange(key, 0, -1)
            elif kind == b"hash":
                value = client.hgetall(key)
            elif kind == b"set":
                value = client.smembers(key)
            elif kind == b"zset":
                value = client.zrange(key, 0, -1)
            else:
                value = kind
            parts.append(f"{key!r} {value!r}")
        client.close()
        return "\n".join(parts)
