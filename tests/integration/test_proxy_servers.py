"""The TCP proxy between real clients and private PostgreSQL and Redis servers: a cut fails
the next call, the clients recover after heal, and Ravel reports the cut as StoreUnavailable."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from pipeline import list_runs, store
from pipeline.errors import StoreUnavailable
from pipeline.migrate import upgrade
from pipeline.settings import reload_settings
from pipeline.testing._postgres import bindir
from pipeline.testing.proxy import Proxy
from pipeline.testing.servers import PostgresServer, RedisServer, ServerError


def _or_skip(exc: ServerError) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{exc} (required in CI)")
    pytest.skip(str(exc))


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[PostgresServer]:
    try:
        bindir()
    except ServerError as exc:
        _or_skip(exc)
    server = PostgresServer(tmp_path / "pg")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_proxy(pg: PostgresServer) -> Iterator[Proxy]:
    proxy = Proxy("127.0.0.1", pg.port)
    try:
        yield proxy
    finally:
        proxy.close()


def test_a_cut_fails_the_next_query_and_the_pool_recovers_after_heal(
    pg: PostgresServer, pg_proxy: Proxy
) -> None:
    engine = create_engine(pg.url_on(pg_proxy.port), pool_size=1)  # no pre-ping: see the cut
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        assert pg_proxy.cut() == 1  # the pooled connection

        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        with pytest.raises(OperationalError), engine.connect() as conn:  # still cut: refused
            conn.execute(text("SELECT 1"))

        pg_proxy.heal()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 2")).scalar() == 2
        assert pg_proxy.stats.refused >= 1 and pg_proxy.stats.accepted == 2
    finally:
        engine.dispose()


def test_ravel_reports_a_cut_database_as_store_unavailable(
    pg: PostgresServer, pg_proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(pg.url)
    monkeypatch.setenv("RAVEL_HOME", str(tmp_path))
    monkeypatch.setenv("RAVEL_DATABASE_URL", pg.url_on(pg_proxy.port))
    reload_settings()
    store.reset_db()
    try:
        assert list_runs() == []
        pg_proxy.cut()
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{pg_proxy.port}"):
            list_runs()
        pg_proxy.heal()
        assert list_runs() == []
    finally:
        store.reset_db()


def test_a_delay_slows_every_query(pg: PostgresServer, pg_proxy: Proxy) -> None:
    engine = create_engine(pg.url_on(pg_proxy.port))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            pg_proxy.delay(0.2)
            began = time.monotonic()
            conn.execute(text("SELECT 1"))
            assert time.monotonic() - began >= 0.4  # the query and its answer, held each
    finally:
        engine.dispose()


def test_redis_through_the_proxy_fails_while_cut_and_reconnects_after_heal(
    tmp_path: Path,
) -> None:
    try:
        server = RedisServer(tmp_path / "redis")
    except ServerError as exc:
        _or_skip(exc)
    try:
        with Proxy("127.0.0.1", server.port) as proxy:
            client = redis.Redis(port=proxy.port, socket_timeout=2)
            client.set("k", "v")
            proxy.cut()
            with pytest.raises(redis.ConnectionError):
                client.get("k")  # its retries hit the refusal too
            proxy.heal()
            assert client.get("k") == b"v"
            assert proxy.stats.cut == 1
    finally:
        server.close()
