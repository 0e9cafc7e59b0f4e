"""What the dashboard reads beyond the API's own queries: runs searched by time and text, and
the checkpoint each step attempt started from (for the state diffs of a run's timeline)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, cast, or_, select

from pipeline.status import RunStatus
from pipeline.store._db import Database
from pipeline.store.records import RunRecord, WaitRecord, from_row
from pipeline.store.runs import _usage_columns, runs_t, steps_t, waits_t


@dataclass(frozen=True)
class RunFilter:
    """What the runs page asks for; every field optional.

    Attributes:
        status: one run status.
        workflow: one workflow name.
        since: runs created at or after this time.
        until: runs created before this time.
        text: a run id (whole, or its first characters) or text found in the run's input.
    """

    status: str | None = None
    workflow: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """The checkpoint one step attempt started from (None fields: not recorded)."""

    seq: int
    attempt: int
    state_before: dict[str, Any] | None
    wait_result: dict[str, Any] | None


def _like(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(where: RunFilter) -> list[Any]:
    found: list[Any] = []
    if where.status is not None:
        found.append(runs_t.c.status == where.status)
    if where.workflow is not None:
        found.append(runs_t.c.workflow == where.workflow)
    if where.since is not None:
        found.append(runs_t.c.created_at >= where.since)
    if where.until is not None:
        found.append(runs_t.c.created_at < where.until)
    if where.text:
        # The input is a scan within the other filters; an id's first characters are a range
        # of the primary key's index.
        matches: ColumnElement[bool] = cast(runs_t.c.input, Text).ilike(
            _like(where.text.strip()), escape="\\"
        )
        ids = _id_range(where.text.strip().lower())
        if ids is not None:
            matches = or_(runs_t.c.id.between(*ids), matches)
        found.append(matches)
    return found


_LOWEST_ID = "00000000-0000-0000-0000-000000000000"
_HIGHEST_ID = "ffffffff-ffff-ffff-ffff-ffffffffffff"


def _id_range(prefix: str) -> tuple[str, str] | None:
    """The lowest and highest ids that start with ``prefix`` (lowercase), or None if no id
    can: ids are compared as UUIDs on PostgreSQL and as their text on SQLite, and the range
    of a prefix is the same in both orders."""
    if not prefix or len(prefix) > len(_LOWEST_ID):
        return None
    for char, shape in zip(prefix, _LOWEST_ID, strict=False):
        if (char == "-") != (shape == "-") or char not in "0123456789abcdef-":
            return None
    rest = len(prefix)
    return prefix + _LOWEST_ID[rest:], prefix + _HIGHEST_ID[rest:]


def search_runs(
    db: Database, where: RunFilter, limit: int, *, before: tuple[datetime, str] | None = None
) -> list[tuple[RunRecord, WaitRecord | None]]:
    """Runs matching ``where``, newest first (ties by id), with their open waits.

    ``before``: only runs after this (created_at, id) in that order, as the cursor of the
    HTTP API's pagination (:mod:`pipeline.web.pages`) gives it.
    """
    query = (
        select(runs_t, *_usage_columns())
        .order_by(runs_t.c.created_at.desc(), runs_t.c.id.desc())
        .limit(limit)
    )
    conditions = _conditions(where)
    if before is not None:
        at, run_id = before
        conditions.append(
            or_(runs_t.c.created_at < at, and_(runs_t.c.created_at == at, runs_t.c.id < run_id))
        )
    if conditions:
        query = query.where(*conditions)
    with db.engine.connect() as conn:
        rows = list(conn.execute(query))
        waiting = [r.id for r in rows if r.status == RunStatus.WAITING.value]
        waits: dict[str, WaitRecord] = {}
        if waiting:
            for w in conn.execute(
                select(waits_t).where(waits_t.c.run_id.in_(waiting), waits_t.c.decided_at.is_(None))
            ):
                waits[w.run_id] = from_row(WaitRecord, w)
    return [(from_row(RunRecord, r), waits.get(r.id)) for r in rows]


def checkpoints(db: Database, run_id: str) -> list[Checkpoint]:
    """The checkpoint every recorded step attempt of the run started from, in order.

    Attempts recorded before migration 0003, and attempts whose worker died (``lost``), have
    none (their fields are None).
    """
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(steps_t.c.seq, steps_t.c.attempt, steps_t.c.state_before, steps_t.c.wait_result)
            .where(steps_t.c.run_id == run_id)
            .order_by(steps_t.c.seq, steps_t.c.attempt)
        )
        return [Checkpoint(int(r.seq), int(r.attempt), r.state_before, r.wait_result) for r in rows]


__all__ = ["Checkpoint", "RunFilter", "checkpoints", "search_runs"]
