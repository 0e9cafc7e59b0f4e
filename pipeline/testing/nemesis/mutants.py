"""Deliberately broken workers: ``celery -A pipeline.testing.nemesis.mutants worker``.

This module is a Celery app module: it applies the bug named by ``RAVEL_MUTANT``, then exposes
``tasks.app``. Only the nemesis uses it, to show that its checker catches each bug:

* ``skip_fence``: the journal intent is written without the fencing check (the attempt may
  have lost its run: cancelled, or taken over), as :func:`pipeline.store.journal.begin_call`
  was before calls were fenced;
* ``double_effect``: every journaled call's function is called twice (a retry loop around an
  effect, or an effect that is not journaled).
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import literal, select

from models import Effect, table_of
from pipeline.context import StepContext
from pipeline.store import journal
from pipeline.store._db import Database, db_now

MUTANTS = ("skip_fence", "double_effect")
_begin_call = journal.begin_call
_journaled = StepContext.journaled


def _unfenced_begin_call(
    db: Database, run_id: str, seq: int, name: str, kind: str, key: str, fencing: int
) -> journal.JournalEntry | None:
    """``begin_call`` whose holder check ignores the fencing token and the run's status."""
    effects = table_of(Effect)
    holder = select(
        literal(run_id).label("run_id"), literal(seq).label("seq"), literal(name).label("name"),
        literal(kind).label("kind"), literal("started").label("status"),
        literal(key).label("idempotency_key"), literal(1).label("calls"),
        literal(0).label("tokens"), literal(0.0).label("cost_usd"),
        db_now().label("started_at"),
    )
    started = effects.c.status == "started"
    from sqlalchemy import case

    stmt = (
        db.dialect_insert(effects)
        .from_select(["run_id", "seq", "name", "kind", "status", "idempotency_key", "calls",
                      "tokens", "cost_usd", "started_at"], holder)
        .on_conflict_do_update(
            index_elements=["run_id", "seq", "name"],
            set_={"calls": case((started, effects.c.calls + 1), else_=effects.c.calls),
                  "started_at": case((started, db_now()), else_=effects.c.started_at)},
        )
        .returning(*effects.c)
    )
    with db.autocommit() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else journal._entry(row)


def _twice(self: StepContext, name: str, kind: str, call: Any, usage: Any = None) -> Any:
    """``journaled`` that calls the function once more before journaling its result."""
    calls = 0

    def doubled() -> Any:
        nonlocal calls
        calls += 1
        call()
        return call()

    return _journaled(self, name, kind, doubled, usage)


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
