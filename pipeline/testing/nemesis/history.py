"""Everything the checker reads, loaded once after the run: the database, the logs, the LLM's
counters. Rows are read with plain SQLAlchemy Core queries on the models' tables (the JSON
columns decode through the store's deserialiser, NUL characters included).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text

from models import AuditEvent, Effect, InboundEvent, Message, Run, StepRecord, Wait, table_of
from pipeline.store._db import dumps, loads
from pipeline.testing.nemesis.jsonlog import read
from pipeline.testing.nemesis.plan import RunPlan
from pipeline.testing.nemesis.script import fault_turns

_TABLES = {
    "steps": StepRecord,
    "effects": Effect,
    "waits": Wait,
    "audit": AuditEvent,
    "inbound": InboundEvent,
}
# Celery's log line prefix, and the line a pool child killed by SIGKILL leaves.
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}): ")
_CHILD_KILLED = "exited with 'signal 9 (SIGKILL)'"


@dataclass
class RunData:
    """One run as stored, with what the driver planned for it."""

    run: Any
    plan: RunPlan | None
    steps: list[Any] = field(default_factory=list)
    effects: list[Any] = field(default_factory=list)
    waits: list[Any] = field(default_factory=list)
    audit: list[Any] = field(default_factory=list)
    inbound: list[Any] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The run id."""
        return str(self.run.id)

    def effect(self, name: str) -> Any | None:
        """The journal row named ``name`` (any seq), or None."""
        return next((e for e in self.effects if e.name == name), None)


@dataclass
class Disruption:
    """A fault that may interrupt a call in flight: when it began and ended (Unix time)."""

    kind: str
    start: float
    end: float


@dataclass
class History:
    """The whole record of a nemesis run."""

    runs: dict[str, RunData]
    plans: dict[str, RunPlan]
    actions: list[dict[str, Any]]
    faults: list[dict[str, Any]]
    posts: list[dict[str, Any]]
    gets: list[dict[str, Any]]
    llm_stats: dict[str, Any]
    salt: str
    hang: float
    disruptions: list[Disruption]
    database_text: str = ""
    broker_text: str = ""
    log_files: list[Path] = field(default_factory=list)

    def by_tag(self) -> dict[str, RunData]:
        """Runs by their plan's tag."""
        return {r.plan.tag: r for r in self.runs.values() if r.plan is not None}

    def actions_of(self, run: RunData, action: str | None = None) -> list[dict[str, Any]]:
        """The driver's actions on a run, oldest first (of one kind if ``action``)."""
        tag = run.plan.tag if run.plan else None
        return [
            a
            for a in self.actions
            if (a.get("run") == run.id or (tag and a.get("tag") == tag))
            and (action is None or a["kind"] == action)
        ]

    def scripted_faults(self, run: RunData) -> dict[int, str]:
        """The LLM faults scripted for a run's turns."""
        if run.plan is None or run.plan.kind != "agent":
            return {}
        return fault_turns(run.plan, self.salt, self.hang)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request the world saw, POSTs and GETs."""
        return [*self.posts, *self.gets]

    def posts_of(self, run: RunData, path: str | None = None) -> list[dict[str, Any]]:
        """The world's POSTs for a run (of one path if given)."""
        tag = run.plan.tag if run.plan else None
        return [
            p for p in self.posts if p.get("ref") == tag and (path is None or p["path"] == path)
        ]

    def requests_of(self, run: RunData) -> list[dict[str, Any]]:
        """Every request the world saw for a run."""
        tag = run.plan.tag if run.plan else None
        return [p for p in self.requests if p.get("ref") == tag]


def epoch(value: datetime) -> float:
    """A database timestamp as Unix time."""
    return value.astimezone(UTC).timestamp()


def load(
    database_url: str,
    plans: list[RunPlan],
    folder: Path,
    *,
    salt: str,
    hang: float,
    llm_stats: dict[str, Any],
    broker_text: str = "",
) -> History:
    """Read the database and the logs of the nemesis run in ``folder``."""
    engine = create_engine(database_url, json_serializer=dumps, json_deserializer=loads)
    by_tag = {p.tag: p for p in plans}
    runs: dict[str, RunData] = {}
    try:
        with engine.connect() as conn:
            for row in conn.execute(select(table_of(Run))):
                plan = by_tag.get(str(row.idempotency_key))
                runs[row.id] = RunData(row, plan)
            for attr, model in _TABLES.items():
                table = table_of(model)
                order = [c for c in table.primary_key.columns]
                for row in conn.execute(select(table).order_by(*order)):
                    if row.run_id in runs:
                        getattr(runs[row.run_id], attr).append(row)
            messages = table_of(Message)
            for row in conn.execute(select(messages).order_by(messages.c.run_id, messages.c.idx)):
                if row.run_id in runs:
                    runs[row.run_id].messages.append(row.message)
            database_text = _dump_tables(conn)
    finally:
        engine.dispose()
    posts = read(folder / "vendor.jsonl")
    faults = read(folder / "faults.jsonl")
    logs = sorted((folder / "logs").glob("*.log"))
    return History(
        runs=runs,
        plans=by_tag,
        actions=read(folder / "actions.jsonl"),
        faults=faults,
        posts=[p for p in posts if p["kind"] == "post"],
        gets=[p for p in posts if p["kind"] == "get"],
        llm_stats=llm_stats,
        salt=salt,
        hang=hang,
        disruptions=_disruptions(faults, logs),
        database_text=database_text,
        broker_text=broker_text,
        log_files=logs,
    )


def _dump_tables(conn: Any) -> str:
    """Every row of every ravel_ table as text (PostgreSQL's row-to-text cast)."""
    names = [
        r[0]
        for r in conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename LIKE 'ravel%'"
            )
        )
    ]
    parts: list[str] = []
    for name in names:
        rows = conn.execute(text(f'SELECT CAST(t AS text) FROM "{name}" t'))
        parts.extend(r[0] for r in rows)
    return "\n".join(parts)


def _disruptions(faults: list[dict[str, Any]], logs: list[Path]) -> list[Disruption]:
    """Faults that may interrupt a call in flight, with their extent in time."""
    found: list[Disruption] = []
    started: dict[tuple[Any, ...], float] = {}
    for entry in faults:
        key = (entry.get("fault"), entry.get("target"), entry.get("detail"))
        if entry["kind"] == "start":
            started[key] = entry["t"]
        elif entry["kind"] in ("end", "failed"):
            begin = started.pop(key, entry["t"])
            found.append(Disruption(str(entry.get("fault")), begin, entry["t"]))
        elif entry["kind"] in ("worker_died", "beat_died"):
            found.append(Disruption(entry["kind"], entry["t"], entry["t"]))
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            if _CHILD_KILLED in line and (stamp := _STAMP.match(line)):
                at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S")
                t = at.timestamp() + int(stamp.group(2)) / 1000  # local time, as Celery logs
                found.append(Disruption("child_killed", t - 1.0, t))
    return found


def group(rows: list[Any], key: str) -> dict[Any, list[Any]]:
    """Rows grouped by one attribute."""
    out: dict[Any, list[Any]] = defaultdict(list)
    for row in rows:
        out[getattr(row, key)].append(row)
    return out
