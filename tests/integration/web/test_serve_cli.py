"""``ravel serve`` refuses to start, in one line, when it could not serve correctly."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import store
from pipeline.cli import cli
from pipeline.settings import reload_settings


def _serve(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["serve", "--port", "0", *args])
    return result.exit_code, result.stderr


def test_a_broken_keys_file_stops_it_before_listening(sqlite_db: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text("[[keys]]\nname = 'ops'\nroles = ['god']\nsha256 = '%s'\n" % ("0" * 64))
    code, err = _serve("--keys-file", str(keys))
    assert code == 1
    assert err.startswith("error: ravel serve cannot start: the API keys file") and "god" in err
    assert "Traceback" not in err


def test_a_database_that_is_not_migrated_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAVEL_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    reload_settings()
    store.reset_db()
    code, err = _serve("--keys-file", str(tmp_path / "none.toml"))
    assert code == 1 and "not migrated" in err and "ravel db upgrade" in err


def test_a_prefix_must_be_a_path(sqlite_db: str) -> None:
    code, err = _serve("--url-prefix", "api")
    assert code == 1 and "--url-prefix must start with '/'" in err
