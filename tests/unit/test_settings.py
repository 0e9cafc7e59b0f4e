"""Settings: read from the environment, with defaults, and bad values refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigurationError
from pipeline.settings import get_settings, normalise_database_url, reload_settings

FLOATS = {
    "RAVEL_LEASE_SECONDS": "lease_seconds",
    "RAVEL_REAPER_INTERVAL": "reaper_interval",
    "RAVEL_REDISPATCH_AFTER": "redispatch_after",
    "RAVEL_STEP_TIME_LIMIT": "step_time_limit",
    "RAVEL_DATABASE_WAIT": "database_wait",
}
ALL = [
    *FLOATS,
    "RAVEL_HOME",
    "RAVEL_DATABASE_URL",
    "RAVEL_BROKER_URL",
    "RAVEL_WORKFLOWS",
    "RAVEL_DEFAULT_QUEUE",
    "RAVEL_DISPATCHER",
    "RAVEL_MODEL",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
]


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean environment; the cached settings are re-read before and after."""
    for name in ALL:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    reload_settings()
    yield monkeypatch
    monkeypatch.undo()
    reload_settings()


def test_defaults(env, tmp_path):
    s = reload_settings()
    assert s.home == (tmp_path / ".ravel").absolute()
    assert s.database_url == f"sqlite:///{tmp_path / '.ravel' / 'ravel.db'}"
    assert s.is_embedded
    assert s.broker_url == "filesystem://"
    assert s.broker_folder == s.home / "broker"
    assert s.workflows == ()
    assert s.default_queue == "ravel"
    assert (
        s.lease_seconds,
        s.reaper_interval,
        s.redispatch_after,
        s.step_time_limit,
        s.database_wait,
    ) == (15.0, 1.0, 5.0, 300.0, 30.0)
    assert s.openai_api_key is None and s.openai_base_url is None


def test_values_from_the_environment(env, tmp_path):
    env.setenv("RAVEL_HOME", str(tmp_path / "h"))
    env.setenv("RAVEL_DATABASE_URL", "postgresql://u@db/ravel")
    env.setenv("RAVEL_WORKFLOWS", " app.flows , ,other.mod,")
    env.setenv("RAVEL_LEASE_SECONDS", "2.5")
    env.setenv("RAVEL_REDISPATCH_AFTER", "0.3")
    env.setenv("RAVEL_DEFAULT_QUEUE", "agents")
    env.setenv("OPENAI_API_KEY", "sk-test-abcdefgh1234")
    s = reload_settings()
    assert s.home == tmp_path / "h"
    assert s.database_url == "postgresql+psycopg://u@db/ravel"
    assert not s.is_embedded
    assert s.workflows == ("app.flows", "other.mod")
    assert (s.lease_seconds, s.redispatch_after) == (2.5, 0.3)
    assert s.default_queue == "agents"
    assert "sk-test" not in repr(s)  # the key is kept out of reprs and logs


def test_settings_are_cached_until_reloaded(env):
    env.setenv("RAVEL_LEASE_SECONDS", "7")
    first = reload_settings()
    env.setenv("RAVEL_LEASE_SECONDS", "8")
    assert get_settings() is first and get_settings().lease_seconds == 7
    assert reload_settings().lease_seconds == 8


def test_empty_values_mean_the_default(env):
    for name in FLOATS:
        env.setenv(name, "")
    env.setenv("RAVEL_DATABASE_URL", "")
    s = reload_settings()
    assert s.lease_seconds == 15.0 and s.database_url.startswith("sqlite:///")


@pytest.mark.parametrize("name", sorted(FLOATS))
@pytest.mark.parametrize("raw", ["abc", "30s", "0", "-1", "1,5"])
def test_bad_numbers_are_refused_with_the_variable_named(env, name, raw):
    env.setenv(name, raw)
    with pytest.raises(ConfigurationError) as info:
        reload_settings()
    assert name in str(info.value) and repr(raw) in str(info.value)


@pytest.mark.parametrize("raw", ["nan", "inf"])
def test_non_finite_numbers_are_refused(env, raw):
    env.setenv("RAVEL_LEASE_SECONDS", raw)
    with pytest.raises(ConfigurationError):
        reload_settings()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("sqlite:///postgresql://x", "sqlite:///postgresql://x"),
    ],
)
def test_database_url_is_pinned_to_psycopg(url, expected):
    assert normalise_database_url(url) == expected


def test_home_is_absolute(env):
    env.setenv("RAVEL_HOME", "relative/dir")
    assert reload_settings().home == Path("relative/dir").absolute()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://ravel:s3cret@db/ravel",
        "mysql+pymysql://u@h/db",
        "mssql+pyodbc://u:s3cret@dsn",
        "oracle://u@h/db",
        "postgresql+asyncpg://u@h/db",
        "ravel.db",
        "  ",
    ],
)
def test_an_unsupported_database_is_refused_in_one_line(env, url):
    env.setenv("RAVEL_DATABASE_URL", url)
    with pytest.raises(ConfigurationError) as info:
        reload_settings()
    message = str(info.value)
    assert message.startswith("unsupported database ")
    assert message.endswith(
        "in RAVEL_DATABASE_URL; Ravel supports postgresql:// (production) "
        "and sqlite:/// (embedded default)"
    )
    assert "\n" not in message and "s3cret" not in message
    if "://" in url:
        assert f" {url.split('://')[0]}:// " in message


def test_an_unsupported_database_is_refused_by_the_api(env):
    from pipeline import api, store

    env.setenv("RAVEL_DATABASE_URL", "mysql://u@h/db")
    get_settings.cache_clear()  # as in a process started with it
    store.reset_db()
    with pytest.raises(ConfigurationError, match=r"unsupported database mysql://"):
        api.list_runs()
    store.reset_db()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///x.db",
        "sqlite://",
        "sqlite+pysqlite:///x.db",
        "postgres://u@h/db",
        "postgresql+psycopg://u@h/db",
        "postgresql+psycopg2://u@h/db",
    ],
)
def test_supported_databases_are_accepted(env, url):
    env.setenv("RAVEL_DATABASE_URL", url)
    assert reload_settings().database_url.split("://")[0] in (
        "sqlite",
        "sqlite+pysqlite",
        "postgresql+psycopg",
    )
