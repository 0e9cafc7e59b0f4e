"""Alembic environment for Ravel's tables only (``ravel_*``, own version table)."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, pool

from models import Base

config = context.config
target_metadata = Base.metadata
# Host apps (and Flask-Migrate) use ``alembic_version``: Ravel keeps its own.
VERSION_TABLE = "ravel_alembic_version"


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Only Ravel's tables: autogenerate must never propose dropping a host app's tables."""
    if type_ == "table":
        return name is not None and name.startswith("ravel_")
    return True


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        version_table=VERSION_TABLE,
        include_name=include_name,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        url = config.get_main_option("sqlalchemy.url")
        assert url, "sqlalchemy.url is not set"
        connectable = create_engine(url, poolclass=pool.NullPool)
        with connectable.connect() as connection:
            _run(connection)
        return
    _run(connectable)


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
