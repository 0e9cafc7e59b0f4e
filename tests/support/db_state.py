"""What the database holds about runs, for tests showing that a refused input changed nothing."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Table, select

from models import AuditEvent, Effect, InboundEvent, Message, Run, StepRecord, Wait, table_of
from pipeline.store import get_db

#: Every table holding a run or something of a run: rows, step records, the journal, the
#: conversation, waits, kept events and the audit log.
RUN_TABLES: tuple[Table, ...] = tuple(
    table_of(model) for model in (Run, StepRecord, Effect, Message, Wait, InboundEvent, AuditEvent)
)


def run_rows(exclude: Iterable[str] = ()) -> dict[str, list[str]]:
    """Every row of the run tables, as text, except the rows of the runs ``exclude``.

    Compare two snapshots taken around a refused input: equal means nothing was written.
    Runs started afterwards to show that the worker still serves go in ``exclude``.
    """
    skip = set(exclude)
    found: dict[str, list[str]] = {}
    with get_db().engine.connect() as conn:
        for table in RUN_TABLES:
            owner = table.c.id if table.name == Run.__tablename__ else table.c.run_id
            rows = conn.execute(select(table)).all()
            found[table.name] = sorted(
                repr(tuple(row)) for row in rows if row._mapping[owner] not in skip
            )
    return found
