"""``ravel db upgrade``: Alembic migrations driven from code (workers never migrate)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import make_url

import models
from pipeline.settings import get_settings

MIGRATIONS = Path(models.__file__).parent / "migrations"
VERSION_TABLE = "ravel_alembic_version"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for Ravel's migrations against ``url`` (default: the settings)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Migrate the database to ``revision``."""
    _ensure_folder(url or get_settings().database_url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Migrate the database down to ``revision``."""
    command.downgrade(alembic_config(url), revision)


def current(url: str | None = None) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    engine = create_engine(url or get_settings().database_url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def head() -> str | None:
    """The newest revision shipped with this version of Ravel."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases, in-memory and URI filenames."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().absolute()


def _ensure_folder(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().absolute().parent.mkdir(
            parents=True, exist_ok=True
        )
