"""Deliberately broken workers: ``celery -A pipeline.testing.nemesis.mutants worker``.

This module is a Celery app module: it applies the bug named by ``RAVEL_MUTANT``, then exposes
``tasks.app``. Only the nemesis uses it, to show that its checker catches each bug:

* ``skip_fence``: a journaled call starts even when the fenced intent write says the attempt
  lost its run (cancelled, or taken over), as if calls were not fenced;
* ``double_effect``: every journaled call's function is called twice (a retry loop around an
  effect, or an effect that is not journaled).
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.context import StepContext
from pipeline.store import journal
from pipeline.store._db import Database

MUTANTS = ("skip_fence", "double_effect")
_begin_call = journal.begin_call
_journaled = StepContext.journaled


def _unfenced_begin_call(
    db: Database,
    run_id: str,
    seq: int,
    name: str,
    kind: str,
    key: str,
    fencing: int,
    owner: str,
) -> journal.JournalEntry | None:
    """``begin_call`` that ignores the fence: where the intent write finds that the attempt
    no longer holds its run (cancelled, or taken over), go on as if it had been written."""
    entry = _begin_call(db, run_id, seq, name, kind, key, fencing, owner)
    if entry is not None:
        return entry
    return journal.JournalEntry(name, kind, "started", key, 1, None, 0, 0.0, None, None)


def _twice(
    self: StepContext, name: str, kind: str, call: Any, usage: Any = None, key: str | None = None
) -> Any:
    """``journaled`` that calls the function once more before journaling its result."""

    def doubled() -> Any:
        call()
        return call()

    return _journaled(self, name, kind, doubled, usage, key)


def apply(name: str) -> None:
    """Install mutant ``name`` in this process (and the pool processes it forks)."""
    if name == "skip_fence":
        journal.begin_call = _unfenced_begin_call
    elif name == "double_effect":
        StepContext.journaled = _twice  # type: ignore[method-assign]
    elif name:
        raise SystemExit(f"RAVEL_MUTANT={name!r}: choose one of {', '.join(MUTANTS)}")


apply(os.environ.get("RAVEL_MUTANT", ""))

from tasks import app  # noqa: E402 - the mutant is in place before the workers load

__all__ = ["app"]
