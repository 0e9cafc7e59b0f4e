"""Fixtures: a fresh database per test (SQLite file, or a new PostgreSQL database), real
services only.

PostgreSQL and Redis are required where ``CI`` is set (missing services fail loudly);
locally, tests that need them are skipped with the reason when they cannot be reached.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import dispatch, store
from pipeline.migrate import upgrade
from pipeline.settings import reload_settings
from tests.support.inline import InlineDispatcher, inline_dispatch
from tests.support.services import PG_ADMIN_URL, create_database, drop_database, pg_available

# Settings come from the environment: strip what a developer's shell may have set so a test
# never touches their data. RAVEL_TEST_* say where the test services are (tests/support).
for _name in list(os.environ):
    if _name.startswith("RAVEL_TEST_"):
        continue
    if _name.startswith(("RAVEL_", "CELERY_")) or _name in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        del os.environ[_name]
# pytest-xdist gives its worker processes COLUMNS=80, which the CLI takes as the width of a
# terminal (its tables squeeze ids into it); a serial run has none. Test as the serial run does.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


def _use(monkeypatch: pytest.MonkeyPatch, home: Path, url: str, **extra: str) -> None:
    monkeypatch.setenv("RAVEL_HOME", str(home))
    monkeypatch.setenv("RAVEL_DATABASE_URL", url)
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    reload_settings()
    store.reset_db()
    dispatch.set_dispatcher(None)


@pytest.fixture
def sqlite_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated SQLite database in a temporary RAVEL_HOME; yields its URL."""
    url = f"sqlite:///{tmp_path / 'ravel.db'}"
    _use(monkeypatch, tmp_path, url)
    upgrade(url)
    yield url
    store.reset_db()


@pytest.fixture
def pg_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new, migrated PostgreSQL database for this test; dropped afterwards."""
    if not pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} (required in CI)")
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    name = f"ravel_test_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    _use(monkeypatch, tmp_path, url)
    upgrade(url)
    yield url
    store.reset_db()
    drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> str:
    """The test runs once on the embedded SQLite default and once on PostgreSQL."""
    fixture = "sqlite_db" if request.param == "sqlite" else "pg_db"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def inline() -> Iterator[InlineDispatcher]:
    """Wake-ups are queued in the test process; call ``inline.drain()`` to run them."""
    with inline_dispatch() as d:
        yield d
