"""The migrations build exactly the schema the models describe, and can go down and up."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool, text

from models import Base
from models.base import RunStatusValues
from pipeline.migrate import VERSION_TABLE, current, downgrade, head, upgrade
from pipeline.status import RunStatus
from tests.support.services import create_database, drop_database, pg_available


def _diff(url: str) -> list[object]:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "version_table": VERSION_TABLE,
                "include_name": lambda name, type_, _: (
                    type_ != "table" or (name or "").startswith("ravel_")
                ),
            },
        )
        return list(compare_metadata(ctx, Base.metadata))


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    if not pg_available():
        pytest.skip("PostgreSQL is not reachable")
    name = f"ravel_mig_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    # A host application's own table must survive Ravel's migrations untouched.
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE host_orders (id int primary key)"))
    yield url
    drop_database(name)


def test_migrated_schema_equals_the_models(empty_db: str) -> None:
    upgrade(empty_db)
    assert current(empty_db) == head()
    assert _diff(empty_db) == []


def test_downgrade_and_upgrade_round_trip(empty_db: str) -> None:
    upgrade(empty_db)
    downgrade(empty_db, "base")
    tables = inspect(create_engine(empty_db, poolclass=pool.NullPool)).get_table_names()
    assert [t for t in tables if t.startswith("ravel_") and t != VERSION_TABLE] == []
    upgrade(empty_db)
    assert _diff(empty_db) == []
    if empty_db.startswith("postgresql"):
        assert "host_orders" in tables, "a host table was dropped"


def test_status_check_constraint_matches_the_enum() -> None:
    assert list(RunStatusValues) == [s.value for s in RunStatus]


def test_every_table_is_prefixed() -> None:
    assert all(name.startswith("ravel_") for name in Base.metadata.tables)
