"""Declarative base, column types and naming conventions shared by every Ravel table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, LargeBinary, MetaData, String, Table, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# The run statuses as stored. ``pipeline.status.RunStatus`` is the Python enum; a unit test
# asserts both agree, so the CHECK constraint and the enum can never drift apart.
RunStatusValues = ("pending", "running", "sleeping", "waiting", "succeeded", "failed", "cancelled")

# Alembic's recommended naming convention: without it autogenerate cannot drop or rename
# unnamed constraints.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend.

    PostgreSQL stores ``timestamptz``; SQLite stores naive UTC text. Reading either gives an
    aware UTC datetime, so hashes and comparisons never depend on the backend.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # a DB-side expression on SQLite returns text
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")

# The id of a run or a wait, a str UUID in Python: a native ``uuid`` on PostgreSQL (16 bytes
# instead of 37, in every row and index entry that names a run), its text on SQLite.
IdType = Uuid(as_uuid=False).with_variant(String(36), "sqlite")


class HexDigest(TypeDecorator[str]):
    """A SHA-256 digest, hex text in Python: its 32 bytes (``bytea``) on PostgreSQL, where
    the audit log keeps one per event, and the 64-character text on SQLite."""

    impl = String(64)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(LargeBinary())
        return dialect.type_descriptor(String(64))

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return bytes.fromhex(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return bytes(value).hex()


class Base(DeclarativeBase):
    """Declarative base of all Ravel tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONType, datetime: UTCDateTime()}


def table_of(model: type[Base]) -> Table:
    """The Core ``Table`` of a model, typed as such (SQL on the hot path uses Core)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
