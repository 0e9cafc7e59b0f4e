"""The only package in ``pipeline`` that issues SQL.

The engine, the API and the reaper talk to the database through the functions of its
modules (``steps`` for the hot path, ``journal``, ``decisions``, ``runs``, ``sweeps``). One
:class:`Database` per process, created lazily so no connection crosses a ``fork()``.
"""

from __future__ import annotations

import threading

from pipeline.settings import get_settings
from pipeline.store._db import Database

_lock = threading.Lock()
_db: Database | None = None


def get_db() -> Database:
    """This process's database, created on first use from the settings."""
    global _db
    if _db is None:
        with _lock:
            if _db is None:
                _db = Database(get_settings().database_url)
    return _db


def reset_db() -> None:
    """Forget this process's database (after a fork, or when the settings changed)."""
    global _db
    with _lock:
        if _db is not None:
            _db.close()
        _db = None


def after_fork() -> None:
    """Drop connections inherited from the parent process without closing them for it."""
    if _db is not None:
        _db.dispose()


__all__ = ["Database", "after_fork", "get_db", "reset_db"]
