"""Engine construction and the few dialect differences the store has to know about.

PostgreSQL is production; SQLite (WAL, ``BEGIN IMMEDIATE``, a busy timeout) exists so the
embedded default runs real worker processes on a bare machine.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, expression
from sqlalchemy.sql.compiler import SQLCompiler

from models.base import UTCDateTime
from pipeline.jsonutil import (
    ESCAPED_IN_JSON,
    UNSTORABLE_IN_JSON,
    escape_unstorable,
    unescape_unstorable,
)


class db_now(expression.FunctionElement[datetime]):
    """The database clock, optionally plus ``seconds``: leases and due times never use a
    worker's clock, so skew between hosts cannot expire or extend them."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(db_now, "postgresql")
def _pg_now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    args = list(element.clauses)
    if not args:
        return "now()"
    return f"(now() + make_interval(secs => {compiler.process(args[0], **kw)}))"


@compiles(db_now, "sqlite")
def _sqlite_now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    # strftime gives milliseconds; pad to the 6 digits SQLAlchemy stores, so text comparison
    # with stored timestamps orders correctly.
    args = list(element.clauses)
    if not args:
        return "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"
    secs = compiler.process(args[0], **kw)
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', ({secs}) || ' seconds') || '000')"


def now_plus(seconds: float) -> ColumnElement[datetime]:
    """The database clock plus ``seconds``."""
    return db_now(expression.literal(float(seconds)))


def json_default(value: Any) -> Any:
    """JSON for the values the store writes besides JSON's own: datetimes and durations."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def dumps(value: Any) -> str:
    """JSON as stored: no NaN/Infinity (PostgreSQL rejects them), datetimes as ISO text, and
    NUL and lone surrogates (which JSONB refuses) escaped losslessly for :func:`loads`."""
    text = json.dumps(value, default=json_default, allow_nan=False, separators=(",", ":"))
    # One search of text that is usually free of such characters: ordinary values pay ~nothing.
    if UNSTORABLE_IN_JSON.search(text) is None:
        return text
    return json.dumps(
        escape_unstorable(value), default=json_default, allow_nan=False, separators=(",", ":")
    )


def loads(text: str | bytes) -> Any:
    """A stored JSON value as it was before :func:`dumps`."""
    value = json.loads(text)
    if isinstance(text, bytes):
        text = text.decode()
    # Substring searches: far cheaper than one regex search over a large value.
    return unescape_unstorable(value) if any(e in text for e in ESCAPED_IN_JSON) else value


class Database:
    """One engine per process, with the dialect-specific pieces the store needs.

    Build it lazily in each process (never before a fork): :func:`pipeline.store.get_store`
    does, and the Celery ``worker_process_init`` hook disposes inherited pools.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._clock: tuple[datetime, float] | None = None  # (database time, monotonic then)
        self.engine: Engine = self._create(url)
        # Writes whose loss in a database crash is harmless (claims, lease renewals) go
        # through connections that commit without waiting for the WAL flush: a lost claim
        # leaves the run pending, its lease owner (unique per claim) not the claimant's, so
        # the claimant's writes match nothing, even after a later claim reaches the same
        # fencing token, and the reaper re-publishes the run. Any later durable commit
        # flushes them anyway.
        self.relaxed_engine: Engine = (
            self.engine
            if self.is_sqlite
            else self._pg_engine(
                url,
                pool_size=1,
                max_overflow=2,
                isolation_level="AUTOCOMMIT",
                connect_args={"options": "-c synchronous_commit=off"},
            )
        )
        # Single statements that commit on their own, durably (a step's commit, journal
        # intents). Their own pool: switching a pooled connection to autocommit and back
        # costs two driver calls per checkout.
        self.autocommit_engine: Engine = (
            self.engine
            if self.is_sqlite
            else self._pg_engine(url, pool_size=8, max_overflow=8, isolation_level="AUTOCOMMIT")
        )
        if not self.is_sqlite:
            for engine in self.engines:
                _ping_when_idle(engine)

    @staticmethod
    def _pg_engine(url: str, **options: Any) -> Engine:
        return create_engine(
            url, json_serializer=dumps, json_deserializer=loads, pool_recycle=1800, **options
        )

    def _create(self, url: str) -> Engine:
        if self.is_sqlite:
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            engine = create_engine(
                url,
                json_serializer=dumps,
                json_deserializer=loads,
                connect_args={"timeout": 30, "isolation_level": None},
            )
            _configure_sqlite(engine)
            return engine
        # A pool holds only connections some thread needed at once: a worker's pool process
        # keeps one or two, a web server's threads (or a burst of approvals from 8 threads)
        # keep theirs instead of opening and closing overflow connections on every call.
        return self._pg_engine(url, pool_size=8, max_overflow=8)

    @property
    def dialect_insert(self) -> Any:
        """``insert`` with ``on_conflict_do_*`` for this dialect."""
        return sqlite.insert if self.is_sqlite else postgresql.insert

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One short write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection whose single statements commit on their own: one round trip each."""
        with self.autocommit_engine.connect() as conn:
            yield conn
            if self.is_sqlite:
                conn.commit()

    @contextmanager
    def relaxed(self) -> Iterator[Connection]:
        """An autocommit connection that does not wait for the WAL flush (see __init__)."""
        if self.is_sqlite:
            with self.autocommit() as conn:
                yield conn
            return
        with self.relaxed_engine.connect() as conn:
            yield conn

    def now(self) -> datetime:
        """Read the database clock."""
        with self.engine.connect() as conn:
            value = conn.execute(expression.select(db_now())).scalar_one()
        assert isinstance(value, datetime)
        return value

    def clock(self) -> datetime:
        """The database clock without a round trip each time: read at most every
        :data:`CLOCK_READ_EVERY` seconds, plus local monotonic time since the last read.

        Only elapsed time is measured locally (a monotonic clock does not jump), so hosts
        whose wall clocks disagree still stamp rows on the database's clock.
        """
        read = self._clock
        if read is None or time.monotonic() - read[1] > CLOCK_READ_EVERY:
            read = self._clock = (self.now(), time.monotonic())
        return read[0] + timedelta(seconds=time.monotonic() - read[1])

    @property
    def engines(self) -> list[Engine]:
        """Every engine of this database (one on SQLite)."""
        found = [self.engine, self.relaxed_engine, self.autocommit_engine]
        return [e for i, e in enumerate(found) if e not in found[:i]]

    def dispose(self) -> None:
        """Drop pooled connections (after a fork: they must not be shared)."""
        for engine in self.engines:
            engine.dispose(close=False)

    def close(self) -> None:
        """Close every pooled connection."""
        for engine in self.engines:
            engine.dispose()


#: :meth:`Database.clock` reads the database clock again after this many seconds
CLOCK_READ_EVERY = 10.0

#: A pooled connection handed back less than this many seconds ago is handed out again
#: without a ping. Below the shortest outage that can replace a server's connections (a
#: PostgreSQL restart takes longer), so a skipped ping would have failed too; and it spares
#: the hot path a round trip (a step checks out a connection to claim, and one to commit).
PING_AFTER_IDLE = 0.25
_IDLE_SINCE = "ravel_idle_since"


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's pre-ping, but only for connections that sat idle in the pool.

    A failed ping invalidates the whole pool (as ``pool_pre_ping`` does) and the checkout gets
    a new connection; a connection opened just now is never pinged.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        # The record's info is cleared when its connection is replaced: a new one has none.
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as err:
            if dialect.is_disconnect(err, dbapi_conn, None):
                raise exc.InvalidatePoolError() from err
            raise


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # WAL lets readers run beside the single writer; the busy timeout makes concurrent
        # worker processes wait for the lock instead of failing with "database is locked".
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Take the write lock up front: a deferred transaction that reads then writes fails
        # at once with SQLITE_BUSY instead of waiting.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


__all__ = ["Database", "db_now", "dumps", "json_default", "loads", "now_plus"]
