"""Database failures as errors a person can act on (the API and the CLI raise these)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from pipeline.errors import DatabaseNotMigrated, PipelineError, StoreUnavailable
from pipeline.redact import mask_url
from pipeline.settings import get_settings

MIGRATE_HINT = "run `ravel db upgrade`"
P = ParamSpec("P")
R = TypeVar("R")


def current_url() -> str:
    """The configured database URL, masked; ``?`` if the settings cannot even be read."""
    try:
        return mask_url(get_settings().database_url)
    except PipelineError:
        return "?"


def reason(exc: DBAPIError) -> str:
    """The first line of the driver's message."""
    orig = exc.orig if exc.orig is not None else exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def sqlstate(exc: DBAPIError) -> str | None:
    """PostgreSQL's SQLSTATE code of the error (psycopg or psycopg2), None elsewhere."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code if isinstance(code, str) else None


def is_missing_table(exc: DBAPIError) -> bool:
    """Whether the error says a Ravel table does not exist."""
    return sqlstate(exc) == "42P01" or "no such table" in str(exc.orig)


def is_old_schema(exc: DBAPIError) -> bool:
    """Whether the error says a column this version expects does not exist."""
    return sqlstate(exc) == "42703" or "no such column" in str(exc.orig)


def translate(exc: DBAPIError) -> PipelineError | None:
    """The actionable error for a database failure, or None for one to raise as is."""
    if is_missing_table(exc):
        return DatabaseNotMigrated(
            f"the database at {current_url()} is not migrated; {MIGRATE_HINT}"
        )
    if is_old_schema(exc):
        return DatabaseNotMigrated(
            f"the database at {current_url()} has an older schema than "
            f"this version of Ravel; {MIGRATE_HINT}"
        )
    if isinstance(exc, OperationalError):
        return StoreUnavailable(
            f"cannot reach the database at {current_url()}: {reason(exc)}; "
            "is it running, and is RAVEL_DATABASE_URL right?"
        )
    return None


def actionable(fn: Callable[P, R]) -> Callable[P, R]:
    """Re-raise database failures of ``fn`` as :func:`translate` describes them."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except DBAPIError as exc:
            better = translate(exc)
            if better is None:
                raise
            raise better from exc

    return wrapper
