"""Reaching the real PostgreSQL, Redis and RabbitMQ the tests use."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from functools import cache
from urllib.parse import unquote, urlparse

import pytest
from kombu.connection import Connection
from sqlalchemy import Engine, create_engine, text

from pipeline.testing.servers import ServerError

PG_HOST = os.environ.get("RAVEL_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("RAVEL_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("RAVEL_TEST_PG_USER", "postgres")
PG_ADMIN_URL = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/test"
REDIS_HOST = os.environ.get("RAVEL_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("RAVEL_TEST_REDIS_PORT", "6379"))
RABBIT_HOST = os.environ.get("RAVEL_TEST_RABBIT_HOST", "127.0.0.1")
RABBIT_PORT = int(os.environ.get("RAVEL_TEST_RABBIT_PORT", "5672"))


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@cache
def pg_available() -> bool:
    """Whether the test PostgreSQL accepts connections."""
    return _reachable(PG_HOST, PG_PORT)


@cache
def redis_available() -> bool:
    """Whether the test Redis accepts connections."""
    return _reachable(REDIS_HOST, REDIS_PORT)


@cache
def rabbitmq_available() -> bool:
    """Whether the test RabbitMQ accepts connections and ``rabbitmqctl`` can manage it."""
    return _reachable(RABBIT_HOST, RABBIT_PORT) and shutil.which("rabbitmqctl") is not None


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl -q ARGS`` against the test RabbitMQ; return its output."""
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
    return done.stdout


def create_vhost(name: str) -> str:
    """Create a RabbitMQ virtual host guest may use; return a broker URL for it."""
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    return f"amqp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/{name}"


def delete_vhost(name: str) -> None:
    """Delete a virtual host with its queues, exchanges and messages."""
    rabbitmqctl("delete_vhost", name)


def vhost_of(broker_url: str) -> str:
    """The virtual host an ``amqp://`` URL names."""
    return unquote(urlparse(broker_url).path[1:]) or "/"


def queue_depths(vhost: str) -> dict[str, tuple[int, int]]:
    """``{queue: (ready, unacked)}`` for every queue of ``vhost``, as ``rabbitmqctl`` shows
    them: the counts of quorum queues are refreshed only every few seconds."""
    out = rabbitmqctl(
        "list_queues",
        "-p",
        vhost,
        "--no-table-headers",
        "name",
        "messages_ready",
        "messages_unacknowledged",
    )
    depths: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        name, ready, unacked = line.rsplit("\t", 2)
        depths[name] = (int(ready), int(unacked))
    return depths


def ready_messages(broker_url: str, queue: str) -> int:
    """Messages ready in ``queue`` right now (a passive declare: no lag)."""
    with Connection(broker_url) as conn:  # type: ignore[no-untyped-call]
        return int(conn.default_channel.queue_declare(queue, passive=True).message_count)


def _admin() -> Engine:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def create_database(name: str) -> str:
    """Create an empty database; return its URL."""
    engine = _admin()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_database(name: str) -> None:
    """Drop a test database, disconnecting anyone still on it."""
    engine = _admin()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def require_programs(find: Callable[[], object]) -> None:
    """Skip (fail in CI) when a private server's programs are not installed.

    Args:
        find: locates the programs (e.g. :func:`pipeline.testing._postgres.bindir`); raises
            :class:`pipeline.testing.servers.ServerError` saying what to install.
    """
    try:
        find()
    except ServerError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (required in CI)")
        pytest.skip(str(exc))
