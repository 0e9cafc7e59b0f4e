"""Log lines that say which run they are about, as text or as JSON lines.

The engine (and the worker's task signals) set the run's fields in a context variable around
a step: ``run_id``, ``workflow``, ``step``, ``seq`` and ``attempt``. :class:`RunFields`, a
filter on the process's handlers, copies them onto every record logged meanwhile, whoever
logs it (Ravel, Celery, the step's own code); a record may also carry them itself
(``extra=run_fields(...)``, as the reaper and the HTTP API do). With ``RAVEL_LOG_FORMAT=json``
each record is one JSON object per line; either way secrets are masked (:mod:`pipeline.redact`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import ConfigurationError
from pipeline.redact import redact

#: the fields a record about a run carries, in the order text lines show them
FIELDS = ("run_id", "workflow", "step", "seq", "attempt")
#: other fields a JSON line includes when a record has them
_EXTRA = ("task_id", "worker", "wait_id")
_EMPTY: Mapping[str, Any] = {}
_context: ContextVar[Mapping[str, Any]] = ContextVar("ravel_log_fields", default=_EMPTY)


def log_format() -> str:
    """``RAVEL_LOG_FORMAT``: ``text`` (the default) or ``json``.

    Raises:
        ConfigurationError: another value.
    """
    value = (os.environ.get("RAVEL_LOG_FORMAT") or "text").strip().lower()
    if value not in ("text", "json"):
        raise ConfigurationError(
            f"RAVEL_LOG_FORMAT={value!r} is not a log format; use text or json"
        )
    return value


def current() -> dict[str, Any]:
    """The run fields set for the code running now (empty outside a run's work)."""
    return dict(_context.get())


@contextmanager
def run_context(**fields: Any) -> Iterator[None]:
    """Set run fields (None values are left out) for the code inside, restored after."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> None:
    """Add fields to the current run context, until the enclosing :func:`run_context` ends."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def run_fields(
    run_id: str, workflow: str | None = None, step: str | None = None, seq: int | None = None
) -> dict[str, Any]:
    """Fields for ``log.info(..., extra=run_fields(...))`` outside a step (reaper, API)."""
    found = {"run_id": run_id, "workflow": workflow, "step": step, "seq": seq}
    return {k: v for k, v in found.items() if v is not None}


class RunFields(logging.Filter):
    """Puts the current run fields on each record that does not carry them already."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record."""
        for key, value in _context.get().items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


def _mask(text: str) -> str:
    masked = redact(text)
    return masked if isinstance(masked, str) else text


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message, process, run fields, error."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a line of JSON, secrets masked."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _mask(record.getMessage()),
            "process": record.process,
        }
        for key in (*FIELDS, *_EXTRA):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exc"] = _mask(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = _mask(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class TextWithFields(logging.Formatter):
    """The handler's own text format, plus `` [run_id=... step=...]`` on a run's lines."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        """Wrap ``inner`` (the format the process had)."""
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        """The inner format, the run fields appended, secrets masked."""
        text = self.inner.format(record)
        shown = [
            f"{k}={getattr(record, k)}" for k in FIELDS if getattr(record, k, None) is not None
        ]
        return _mask(text + (f" [{' '.join(shown)}]" if shown else ""))


def install(handlers: Iterable[logging.Handler], fmt: str | None = None) -> None:
    """Give each handler the run fields and the format of ``RAVEL_LOG_FORMAT`` (or ``fmt``).

    Safe to call again on the same handlers (Celery sets its loggers up more than once).
    """
    chosen = fmt or log_format()
    for handler in handlers:
        if not any(isinstance(f, RunFields) for f in handler.filters):
            handler.addFilter(RunFields())
        current_format = handler.formatter
        if chosen == "json":
            if not isinstance(current_format, JsonLines):
                handler.setFormatter(JsonLines())
        elif not isinstance(current_format, TextWithFields):
            handler.setFormatter(TextWithFields(current_format))


__all__ = [
    "FIELDS",
    "JsonLines",
    "RunFields",
    "TextWithFields",
    "bind",
    "current",
    "install",
    "log_format",
    "run_context",
    "run_fields",
]
