"""The effects journal and the conversation: what a step reads and writes outside its commit.

Intent and result are each one autocommit statement: the intent must be durable before the
call starts (so a crash mid-call is recognised as an unknown outcome), and the result durable
as soon as the call returns (so no later attempt repeats it). The intent is fenced: it is
written only while the attempt still holds the run, so a cancelled run or a worker that lost
its lease starts no new call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, literal, select, text, update

from models import Effect, Message, Run, table_of
from models.base import JSONType
from pipeline.status import RunStatus
from pipeline.store._db import Database, db_now
from pipeline.store.records import JournalCall, from_row

effects_t = table_of(Effect)
runs_t = table_of(Run)
messages_t = table_of(Message)


@dataclass(frozen=True)
class JournalEntry:
    """One journaled call of a step."""

    name: str
    kind: str
    status: str
    idempotency_key: str
    calls: int
    result: Any
    tokens: int
    cost_usd: float
    model: str | None
    finished_at: datetime | None

    @property
    def done(self) -> bool:
        """Whether the call's result is recorded."""
        return self.status == "done"


def load(db: Database, run_id: str, seq: int) -> dict[str, JournalEntry]:
    """The journal of one step (all its attempts), by effect name."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(effects_t).where(effects_t.c.run_id == run_id, effects_t.c.seq == seq)
        )
        return {r.name: _entry(r) for r in rows}


def begin_call(
    db: Database,
    run_id: str,
    seq: int,
    name: str,
    kind: str,
    key: str,
    fencing: int,
    owner: str,
) -> JournalEntry | None:
    """Write (or count again) the intent to call ``name``, fenced by the attempt's claim.

    One statement: the intent is written only while the attempt still holds the run (same
    fencing token and lease owner, status running), and the entry is returned as it is now:
    a ``done`` entry carries its recorded result (another attempt made the call; do not call
    again). None means the attempt no longer holds the run (cancelled, or its lease was
    taken over): no call may start.
    """
    holder = (
        select(
            literal(run_id, effects_t.c.run_id.type).label("run_id"),
            literal(seq).label("seq"),
            literal(name).label("name"),
            literal(kind).label("kind"),
            literal("started").label("status"),
            literal(key).label("idempotency_key"),
            literal(1).label("calls"),
            literal(0).label("tokens"),
            literal(0.0).label("cost_usd"),
            db_now().label("started_at"),
        )
        .select_from(runs_t)
        .where(
            runs_t.c.id == run_id,
            runs_t.c.fencing == fencing,
            runs_t.c.lease_owner == owner,
            runs_t.c.status == RunStatus.RUNNING.value,
        )
    )
    started = effects_t.c.status == "started"
    stmt = (
        db.dialect_insert(effects_t)
        .from_select(list(_INTENT_COLUMNS), holder)
        .on_conflict_do_update(
            index_elements=["run_id", "seq", "name"],
            # A done entry is returned untouched; a started one counts one more call.
            set_={
                "calls": case((started, effects_t.c.calls + 1), else_=effects_t.c.calls),
                "started_at": case((started, db_now()), else_=effects_t.c.started_at),
            },
        )
        .returning(*effects_t.c)
    )
    with db.autocommit() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else _entry(row)


_INTENT_COLUMNS = (
    "run_id",
    "seq",
    "name",
    "kind",
    "status",
    "idempotency_key",
    "calls",
    "tokens",
    "cost_usd",
    "started_at",
)


def _entry(r: Any) -> JournalEntry:
    return JournalEntry(
        r.name,
        r.kind,
        r.status,
        r.idempotency_key,
        r.calls,
        r.result,
        r.tokens,
        r.cost_usd,
        r.model,
        r.finished_at,
    )


def record_result(
    db: Database,
    run_id: str,
    seq: int,
    name: str,
    result: Any,
    *,
    tokens: int = 0,
    cost_usd: float = 0.0,
    model: str | None = None,
) -> bool:
    """Record a call's result; False if another attempt recorded one first (its result wins)."""
    stmt = (
        update(effects_t)
        .where(
            effects_t.c.run_id == run_id,
            effects_t.c.seq == seq,
            effects_t.c.name == name,
            effects_t.c.status == "started",
        )
        .values(
            status="done",
            result=result,
            tokens=tokens,
            cost_usd=cost_usd,
            model=model,
            finished_at=db_now(),
        )
    )
    with db.autocommit() as conn:
        return conn.execute(stmt).rowcount == 1


def usage(db: Database, run_id: str) -> tuple[int, float, int]:
    """The run's tokens and cost so far, and how many tool calls it made."""
    with db.engine.connect() as conn:
        row = conn.execute(
            select(
                func.coalesce(func.sum(effects_t.c.tokens), 0),
                func.coalesce(func.sum(effects_t.c.cost_usd), 0.0),
                func.count().filter(effects_t.c.kind == "tool"),
            ).where(effects_t.c.run_id == run_id)
        ).one()
    return int(row[0]), float(row[1]), int(row[2])


def usage_by_call(db: Database, run_id: str) -> list[JournalCall]:
    """Every journaled call of the run, in order: the ledger for timelines and proofs."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(effects_t)
            .where(effects_t.c.run_id == run_id)
            .order_by(effects_t.c.seq, effects_t.c.started_at)
        )
        return [from_row(JournalCall, r) for r in rows]


# PostgreSQL: the messages as one JSON array, parsed once, instead of a row per message.
_CONVERSATION_PG = text(
    "SELECT coalesce(jsonb_agg(message ORDER BY idx), '[]'::jsonb) AS messages "
    "FROM ravel_messages WHERE run_id = :run_id AND idx > :after"
).columns(messages=JSONType)

#: conversations this process loaded last, by (database, run): an agent loads its run's
#: conversation for every model call, so the next step of a run fetches only the messages
#: committed since (they are append-only) and Ravel's time per turn does not grow with it
CONVERSATIONS_KEPT = 16
_conversations: OrderedDict[tuple[str, str], list[dict[str, Any]]] = OrderedDict()
_conversations_lock = threading.Lock()


def load_messages(db: Database, run_id: str, count: int | None = None) -> list[dict[str, Any]]:
    """The run's conversation, oldest first (a new list each call).

    Args:
        db: the store.
        run_id: the run.
        count: how many messages the run has committed (the claim says), if known: a
            conversation kept from an earlier step is extended with the rest only.
    """
    key = (db.url, run_id)
    with _conversations_lock:
        kept = _conversations.get(key)
    if kept is None or (count is not None and len(kept) > count):
        kept = []
    messages = kept + _fetch_messages(db, run_id, after=len(kept))
    with _conversations_lock:
        _conversations[key] = messages
        _conversations.move_to_end(key)
        while len(_conversations) > CONVERSATIONS_KEPT:
            _conversations.popitem(last=False)
    return list(messages)


def _fetch_messages(db: Database, run_id: str, *, after: int) -> list[dict[str, Any]]:
    """The run's messages after the first ``after`` (message ``idx`` counts from 1)."""
    with db.engine.connect() as conn:
        if not db.is_sqlite:
            found: list[dict[str, Any]] = conn.execute(
                _CONVERSATION_PG, {"run_id": run_id, "after": after}
            ).scalar_one()
            return found
        rows = conn.execute(
            select(messages_t.c.message)
            .where(messages_t.c.run_id == run_id, messages_t.c.idx > after)
            .order_by(messages_t.c.idx)
        )
        return [r.message for r in rows]
