"""One typed settings object, read from ``RAVEL_*`` (and ``OPENAI_*``) environment variables."""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigurationError


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(
            f"{name}={raw!r} is not a number; set it to seconds, e.g. 30"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name}={raw!r} must be a finite number greater than zero")
    return value


def _bytes(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(
            f"{name}={raw!r} is not a whole number; set it to bytes, e.g. {default}"
        ) from None
    if value <= 0:
        raise ConfigurationError(f"{name}={raw!r} must be a number of bytes greater than zero")
    return value


def normalise_database_url(url: str) -> str:
    """Pin PostgreSQL URLs to psycopg (3), the driver Ravel installs.

    psycopg prepares a statement on the server once it has run it a few times: a step's claim
    and commit are then neither parsed nor planned again (a third of a step's database time).
    SQLAlchemy 2.0 would pick psycopg2 for a bare ``postgresql://``, and a
    ``postgresql+psycopg2://`` URL from an earlier Ravel (which installed psycopg2) would ask
    for a driver no longer installed: both are read as psycopg.
    """
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


#: URL schemes of the databases Ravel runs on (PostgreSQL through psycopg, SQLite).
SUPPORTED_DATABASES = (
    "postgresql",
    "postgres",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "sqlite",
    "sqlite+pysqlite",
)


def supported_database_url(url: str) -> str:
    """``url`` pinned to psycopg, or a :class:`ConfigurationError` for another database.

    Without this check a ``mysql://`` URL fails later with a driver import error
    (``No module named 'MySQLdb'``) that says nothing about what Ravel supports.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SUPPORTED_DATABASES:
        # Only the scheme is shown: the rest of the URL may hold a password.
        what = f"{scheme}://" if scheme else "URL (no scheme://)"
        raise ConfigurationError(
            f"unsupported database {what} in RAVEL_DATABASE_URL; Ravel supports "
            "postgresql:// (production) and sqlite:/// (embedded default)"
        )
    return normalise_database_url(url)


@dataclass(frozen=True)
class Settings:
    """Ravel's configuration. Build it with :func:`get_settings`, which reads the environment.

    Attributes:
        home: folder of the embedded default (SQLite file, filesystem broker): ``RAVEL_HOME``.
        database_url: ``RAVEL_DATABASE_URL``; default a SQLite file under ``home``.
        broker_url: ``RAVEL_BROKER_URL``; default a filesystem broker under ``home``.
        workflows: modules a worker imports, from ``RAVEL_WORKFLOWS`` (comma-separated).
        default_queue: Celery queue of steps that name none: ``RAVEL_DEFAULT_QUEUE``.
        reaper_queue: Celery queue of the reaper's passes, consumed by every worker so a
            backlog of steps cannot starve it: ``RAVEL_REAPER_QUEUE`` (default
            ``<default_queue>.reaper``).
        lease_seconds: how long a claim holds a run before another worker may take it over;
            a running step renews it every third of that: ``RAVEL_LEASE_SECONDS``.
        reaper_interval: seconds between reaper passes (beat): ``RAVEL_REAPER_INTERVAL``.
        redispatch_after: a pending run whose wake-up is older than this is re-published:
            ``RAVEL_REDISPATCH_AFTER``.
        step_time_limit: soft time limit of one step in seconds: ``RAVEL_STEP_TIME_LIMIT``.
        database_wait: how long a starting worker or beat retries an unreachable database
            before it exits: ``RAVEL_DATABASE_WAIT``.
        dispatcher: ``module:function`` that publishes wake-ups: ``RAVEL_DISPATCHER``.
        openai_base_url / openai_api_key / model: the LLM endpoint (``OPENAI_BASE_URL``,
            ``OPENAI_API_KEY``, ``RAVEL_MODEL``).
        max_input_bytes: size limit of a run input, decision data, event payload and state
            patch, as JSON: ``RAVEL_MAX_INPUT_BYTES`` (64 KiB).
        max_state_bytes: size limit of a run's state as a step leaves it:
            ``RAVEL_MAX_STATE_BYTES`` (256 KiB).
        max_value_bytes: size limit of any other stored value (effect, LLM and tool results,
            ``Done`` results, wait data, audit data, messages): ``RAVEL_MAX_VALUE_BYTES`` (1 MiB).
        metrics_dir: folder of the workers' Prometheus metric files, one sub-folder per
            worker: ``RAVEL_METRICS_DIR`` (default ``<home>/metrics``).
    """

    home: Path
    database_url: str
    broker_url: str
    workflows: tuple[str, ...]
    default_queue: str = "ravel"
    reaper_queue: str = "ravel.reaper"
    lease_seconds: float = 15.0
    reaper_interval: float = 1.0
    redispatch_after: float = 5.0
    step_time_limit: float = 300.0
    database_wait: float = 30.0
    dispatcher: str = "tasks.dispatch:publish"
    openai_base_url: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    model: str = "gpt-4o-mini"
    max_input_bytes: int = 64 * 1024
    max_state_bytes: int = 256 * 1024
    max_value_bytes: int = 1024 * 1024
    metrics_dir: Path | None = None

    @property
    def metrics_folder(self) -> Path:
        """Folder of the workers' Prometheus metric files (``RAVEL_METRICS_DIR``)."""
        return self.metrics_dir or self.home / "metrics"

    @property
    def is_embedded(self) -> bool:
        """Whether the run store is the embedded SQLite default."""
        return self.database_url.startswith("sqlite")

    @property
    def broker_folder(self) -> Path:
        """Folder of the filesystem broker (embedded default)."""
        return self.home / "broker"


def _read() -> Settings:
    home = Path(os.environ.get("RAVEL_HOME") or ".ravel").absolute()
    database_url = os.environ.get("RAVEL_DATABASE_URL") or f"sqlite:///{home / 'ravel.db'}"
    broker_url = os.environ.get("RAVEL_BROKER_URL") or "filesystem://"
    modules = os.environ.get("RAVEL_WORKFLOWS", "")
    default_queue = os.environ.get("RAVEL_DEFAULT_QUEUE") or "ravel"
    metrics_dir = os.environ.get("RAVEL_METRICS_DIR")
    return Settings(
        home=home,
        database_url=supported_database_url(database_url),
        broker_url=broker_url,
        workflows=tuple(m.strip() for m in modules.split(",") if m.strip()),
        default_queue=default_queue,
        reaper_queue=os.environ.get("RAVEL_REAPER_QUEUE") or f"{default_queue}.reaper",
        lease_seconds=_float("RAVEL_LEASE_SECONDS", 15.0),
        reaper_interval=_float("RAVEL_REAPER_INTERVAL", 1.0),
        redispatch_after=_float("RAVEL_REDISPATCH_AFTER", 5.0),
        step_time_limit=_float("RAVEL_STEP_TIME_LIMIT", 300.0),
        database_wait=_float("RAVEL_DATABASE_WAIT", 30.0),
        dispatcher=os.environ.get("RAVEL_DISPATCHER") or "tasks.dispatch:publish",
        openai_base_url=os.environ.get("OPENAI_BASE_URL") or None,
        openai_api_key=os.environ.get("OPENAI_API_KEY") or None,
        model=os.environ.get("RAVEL_MODEL") or "gpt-4o-mini",
        max_input_bytes=_bytes("RAVEL_MAX_INPUT_BYTES", 64 * 1024),
        max_state_bytes=_bytes("RAVEL_MAX_STATE_BYTES", 256 * 1024),
        max_value_bytes=_bytes("RAVEL_MAX_VALUE_BYTES", 1024 * 1024),
        metrics_dir=Path(metrics_dir).absolute() if metrics_dir else None,
    )


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return _read()


def reload_settings() -> Settings:
    """Forget the cached settings and read the environment again (tests, CLI options)."""
    get_settings.cache_clear()
    return get_settings()
