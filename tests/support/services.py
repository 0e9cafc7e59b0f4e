"""Reaching the real PostgreSQL and Redis the tests use."""

from __future__ import annotations

import os
import socket
from functools import cache

from sqlalchemy import Engine, create_engine, text

PG_HOST = os.environ.get("RAVEL_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("RAVEL_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("RAVEL_TEST_PG_USER", "postgres")
PG_ADMIN_URL = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/test"
REDIS_HOST = os.environ.get("RAVEL_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("RAVEL_TEST_REDIS_PORT", "6379"))


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


def _admin() -> Engine:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def create_database(name: str) -> str:
    """Create an empty database; return its URL."""
    engine = _admin()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_database(name: str) -> None:
    """Drop a test database, disconnecting anyone still on it."""
    engine = _admin()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
