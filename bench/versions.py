"""The versions of everything a benchmark's figures depend on."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import redis
from sqlalchemy import create_engine, text

from tests.support.services import PG_ADMIN_URL, REDIS_HOST, REDIS_PORT

PACKAGES = (
    "celery",
    "kombu",
    "redis",
    "SQLAlchemy",
    "dbos",
    "langgraph",
    "langgraph-checkpoint-postgres",
    "psycopg",
    "openai",
)


def _package(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, Any]:
    """Package versions (None: not installed) and the PostgreSQL and Redis servers'."""
    found: dict[str, Any] = {name: _package(name) for name in PACKAGES}
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            found["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
            found["postgresql_settings"] = {
                k: conn.execute(text(f"SHOW {k}")).scalar()
                for k in ("synchronous_commit", "shared_buffers", "fsync", "wal_level")
            }
    finally:
        engine.dispose()
    found["redis_server"] = redis.Redis(REDIS_HOST, REDIS_PORT).info("server")["redis_version"]
    return found
