"""What a step task's message must carry, checked before anything reaches the database.

Ravel's own wake-ups always carry a run id (a UUID), the step seq (an int) and the workflow
version (an int; absent from wake-ups published before they carried it). Anything else on a
step queue was written by something other than Ravel (a script, another app sharing the
broker, a corrupted message): it is refused in one log line and dropped, without a claim, a
query or a traceback, and the worker goes on serving.
"""

from __future__ import annotations

import uuid
from typing import Any

#: Longest run id text accepted for parsing (a UUID is 36 characters; braces, URN prefix).
_MAX_RUN_ID = 64


class MalformedWakeup(ValueError):
    """A step task's message does not carry a run id, a step seq and a version."""


def _describe(value: Any) -> str:
    """A short, safe description of an unexpected value (never the whole of it)."""
    if isinstance(value, str):
        shown = repr(value[:40]) + ("..." if len(value) > 40 else "")
        return f"a {len(value)}-character string {shown}"
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def check_wakeup(run_id: Any, seq: Any, version: Any) -> tuple[str, int, int | None]:
    """Return the wake-up's (run id, seq, version), or raise :class:`MalformedWakeup`.

    Raises:
        MalformedWakeup: saying what is wrong with each argument, without echoing more than
            the start of any value.
    """
    rid = _as_run_id(run_id)
    problems = [
        None if rid is not None else _not_a_run_id(run_id),
        _not_a_count(seq, "seq", 0),
        None if version is None else _not_a_count(version, "version", 1),
    ]
    found = [p for p in problems if p]
    if found:
        raise MalformedWakeup("; ".join(found))
    assert rid is not None
    return rid, seq, version


def _as_run_id(value: Any) -> str | None:
    """The run id in its canonical form, or None if ``value`` is not one."""
    if isinstance(value, str) and len(value) <= _MAX_RUN_ID:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            return None
    return None


def _not_a_run_id(value: Any) -> str:
    if value is None:
        return "run_id is missing"
    return f"run_id is {_describe(value)}, not a run id (a UUID)"


def _not_a_count(value: Any, name: str, minimum: int) -> str | None:
    """Why ``value`` is not an int of at least ``minimum`` (None: it is)."""
    if value is None:
        return f"{name} is missing"
    if type(value) is not int or value < minimum:
        return f"{name} is {_describe(value)}, not a whole number >= {minimum}"
    return None
