"""Database trouble reaches API users as an error that says what to do, not a driver trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import PipelineError, list_runs, start_run
from pipeline import store as store_module
from pipeline.errors import DatabaseNotMigrated, StoreUnavailable
from pipeline.settings import reload_settings
from tests.support.workers import free_port


def _point_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("RAVEL_DATABASE_URL", url)
    reload_settings()
    store_module.reset_db()


def test_an_unmigrated_database_says_run_ravel_db_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _point_at(monkeypatch, f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(DatabaseNotMigrated, match="run `ravel db upgrade`"):
        list_runs()
    with pytest.raises(PipelineError, match="not migrated"):
        start_run("anything", {})
    store_module.reset_db()


def test_an_unreachable_database_is_named_with_its_password_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _point_at(monkeypatch, f"postgresql://ravel:s3cret@127.0.0.1:{free_port()}/nowhere")
    with pytest.raises(StoreUnavailable) as caught:
        list_runs()
    message = str(caught.value)
    assert "cannot reach the database" in message and "***" in message
    assert "s3cret" not in message
    store_module.reset_db()
