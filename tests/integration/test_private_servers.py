"""Private Redis, PostgreSQL and RabbitMQ servers: they serve real clients, survive a SIGKILL
with their committed data, and leave no process or folder behind."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from pipeline.testing._postgres import bindir
from pipeline.testing._rabbit import scripts
from pipeline.testing._server_base import alive, processes, which
from pipeline.testing.servers import (
    PostgresServer,
    RabbitServer,
    RedisServer,
    Server,
    ServerError,
    port_open,
)
from tests.support.services import require_programs


def _session(server: Server) -> list[int]:
    """The pids of a child server's session (the server and what it started)."""
    proc = getattr(server, "proc", None)
    assert proc is not None
    return [proc.pid, *processes(lambda _ppid, sid: sid == proc.pid)]


@pytest.fixture
def closing() -> Iterator[list[Server]]:
    """Servers the test adds here are closed after it, whatever happens."""
    servers: list[Server] = []
    try:
        yield servers
    finally:
        for server in servers:
            server.close()


def _redis(closing: list[Server], folder: Path, **options: Any) -> RedisServer:
    require_programs(lambda: which("redis-server", "apt-get install redis-server"))
    kind: type[RedisServer] = options.pop("kind", RedisServer)
    server = kind(folder, start=False, **options)
    closing.append(server)
    return server


class _DeafRedis(RedisServer):
    """Starts, but never answers as ready."""

    def _ready(self) -> bool:
        return False


def test_redis_serves_flushes_and_restarts_with_its_append_only_file(
    closing: list[Server], tmp_path: Path
) -> None:
    server = _redis(closing, tmp_path / "redis", appendonly=True)
    server.start()
    client = redis.Redis.from_url(server.url)
    client.set("kept", "1")
    server.restart()  # graceful: the append-only file is written out
    assert client.get("kept") == b"1"

    server.flushall()
    assert client.dbsize() == 0

    first = _session(server)
    server.kill()
    assert not any(alive(pid) for pid in first)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url, retry_on_error=[]).ping()
    server.start()
    assert client.set("again", "1") and server.url.endswith(f":{server.port}/0")


def test_redis_without_append_only_file_forgets_on_restart(
    closing: list[Server], tmp_path: Path
) -> None:
    server = _redis(closing, tmp_path / "redis")
    server.start()
    client = redis.Redis.from_url(server.url)
    client.set("lost", "1")
    server.restart()
    assert client.get("lost") is None


def test_close_leaves_no_process(closing: list[Server], tmp_path: Path) -> None:
    with _redis(closing, tmp_path / "redis") as server:
        server.start()
        pids = _session(server)
    assert not any(alive(pid) for pid in pids)
    assert not port_open(server.port)


def test_a_server_that_dies_at_start_says_why(closing: list[Server], tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        server = _redis(closing, tmp_path / "redis", port=taken.getsockname()[1])
        with pytest.raises(ServerError, match=r"exited while starting(?s:.*)already in use"):
            server.start()


def test_a_server_never_ready_times_out_with_its_log(closing: list[Server], tmp_path: Path) -> None:
    server = _redis(closing, tmp_path / "redis", kind=_DeafRedis)
    with pytest.raises(ServerError, match=r"not ready after 0\.5s(?s:.*)redis\.log"):
        server.start(timeout=0.5)
    assert not server.running(), "a server that failed to start must not be left running"


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[PostgresServer]:
    require_programs(bindir)
    server = PostgresServer(tmp_path / "pg")
    try:
        yield server
    finally:
        server.close()


def test_postgres_keeps_a_committed_row_through_sigkill(pg: PostgresServer) -> None:
    engine = create_engine(pg.url, pool_pre_ping=True)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x text)"))
            conn.execute(text("INSERT INTO t VALUES ('committed')"))
        postmaster = pg._postmaster()
        assert postmaster is not None
        backends = processes(lambda ppid, _sid: ppid == postmaster)
        assert backends, "a live server has backends (checkpointer, walwriter ...)"

        pg.kill()
        assert not any(alive(pid) for pid in [postmaster, *backends])
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 1"))

        pg.start()  # crash recovery from the write-ahead log
        with engine.connect() as conn:
            assert conn.execute(text("SELECT x FROM t")).scalars().all() == ["committed"]
        pg.restart()  # graceful
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
    finally:
        engine.dispose()


def test_postgres_close_removes_its_processes_and_outside_files(tmp_path: Path) -> None:
    require_programs(bindir)
    server = PostgresServer(tmp_path / "pg")
    postmaster = server._postmaster()
    assert postmaster is not None and server.started_in is not None
    base = server.base
    server.close()
    assert not alive(postmaster) and not port_open(server.port)
    if base != server.folder:  # root: the data lived where the postgres account can reach
        assert not base.exists() and not (server.folder / "pgdata").exists()


def test_a_postgres_that_cannot_start_says_why(tmp_path: Path) -> None:
    require_programs(bindir)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        server = PostgresServer(tmp_path / "pg", port=taken.getsockname()[1], start=False)
        try:
            with pytest.raises(ServerError, match=r"pg_ctl failed(?s:.*)already in use"):
                server.start()
            assert not server.running()
        finally:
            server.close()


@pytest.fixture
def rabbit(tmp_path: Path) -> Iterator[RabbitServer]:
    require_programs(scripts)
    require_programs(lambda: which("epmd", "it comes with Erlang"))
    server = RabbitServer(tmp_path / "rabbit")
    try:
        yield server
    finally:
        server.close()


def _publish(url: str, queue: str, body: dict[str, int]) -> None:
    with kombu.Connection(url, transport_options={"confirm_publish": True}) as conn:
        q = kombu.Queue(queue, durable=True)
        with conn.Producer() as producer:
            producer.publish(body, routing_key=queue, declare=[q], delivery_mode=2)


def _get(url: str, queue: str) -> object:
    with kombu.Connection(url) as conn, conn.SimpleQueue(queue) as q:
        message = q.get(timeout=5)
        message.ack()
        return message.payload


@pytest.mark.slow
def test_rabbit_node_keeps_a_persistent_message_through_restart_and_sigkill(
    rabbit: RabbitServer, capsys: pytest.CaptureFixture[str]
) -> None:
    timings = {"first start": rabbit.started_in}
    _publish(rabbit.url, "durable-q", {"n": 1})
    assert rabbit.list_queues() == [
        {"name": "durable-q", "messages": 1, "durable": True, "type": "classic"}
    ]

    rabbit.restart()
    timings["graceful restart"] = rabbit.started_in
    assert [q["messages"] for q in rabbit.list_queues()] == [1]

    session = _session(rabbit)
    rabbit.kill()
    assert not any(alive(pid) for pid in session)
    rabbit.start()
    timings["start after SIGKILL"] = rabbit.started_in
    assert _get(rabbit.url, "durable-q") == {"n": 1}  # confirmed, so it was on disk

    rabbit.delete_queue("durable-q")
    assert rabbit.list_queues() == []
    with capsys.disabled():
        print(
            "\nprivate RabbitMQ node: "
            + ", ".join(f"{what} {seconds:.1f}s" for what, seconds in timings.items() if seconds)
        )


@pytest.mark.slow
def test_rabbit_close_leaves_nothing_and_never_touches_the_shared_node(tmp_path: Path) -> None:
    require_programs(scripts)
    require_programs(lambda: which("epmd", "it comes with Erlang"))
    shared_before = port_open(5672)
    server = RabbitServer(tmp_path / "rabbit")
    assert server.node.startswith("ravel-") and server.port != 5672
    pids = _session(server)
    assert server.epmd is not None
    epmd = server.epmd.pid
    server.close()
    assert not any(alive(pid) for pid in [*pids, epmd])
    assert not port_open(server.port) and not port_open(server.epmd_port)
    assert port_open(5672) == shared_before
