"""The ``ravel_*`` tables.

Due times (``wake_at``, lease expiry, wait deadlines) live in indexed columns so the reaper
finds what is due with one index scan; Celery ETA/countdown is never used for them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, HexDigest, IdType, JSONType, RunStatusValues

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

_STATUS_CHECK = "status IN (" + ", ".join(f"'{s}'" for s in RunStatusValues) + ")"


class WorkflowRecord(Base):
    """A workflow version some worker serves: lets ``start_run`` work without the workflow code.

    One row per (name, version): a rolling deploy keeps the old version's row (and its
    ``last_seen_at``) beside the new one, so operators see which versions are still served.
    """

    __tablename__ = "ravel_workflows"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    start_step: Mapped[str] = mapped_column(String(200))
    # {step name: Celery queue}
    steps: Mapped[dict[str, Any]] = mapped_column(JSONType)
    first_seen_at: Mapped[datetime]
    # Refreshed by every worker that serves it, at start and with its heartbeat.
    last_seen_at: Mapped[datetime]


class WorkerRecord(Base):
    """A worker process group (one ``celery worker``) and what it serves, by heartbeat."""

    __tablename__ = "ravel_workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    # {workflow name: [versions]}
    workflows: Mapped[dict[str, Any]] = mapped_column(JSONType)
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class ReaperRecord(Base):
    """The last pass of each process that runs the reaper: how operators see it is alive."""

    __tablename__ = "ravel_reapers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_pass_at: Mapped[datetime]
    passes: Mapped[int] = mapped_column(BigInteger, default=0)
    # What the last pass did: {"woken": n, "expired": n, "republished": n, "errors": n}
    last_report: Mapped[dict[str, Any]] = mapped_column(JSONType)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]


class Run(Base):
    """One execution of a workflow: its status, checkpoint state and lease."""

    __tablename__ = "ravel_runs"
    __table_args__ = (
        CheckConstraint(_STATUS_CHECK, name="status"),
        Index("ix_ravel_runs_status_workflow", "status", "workflow"),
        Index("ix_ravel_runs_created_at", "created_at"),
        # Partial indexes: each sweep of the reaper scans only the rows it may act on.
        Index(
            "ix_ravel_runs_wake_due",
            "wake_at",
            postgresql_where=text("status = 'sleeping'"),
            sqlite_where=text("status = 'sleeping'"),
        ),
        Index(
            "ix_ravel_runs_pending_redispatch",
            "redispatch_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_ravel_runs_lease_expiry",
            "lease_expires_at",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
        # The forks of a run (few runs are forks: the index holds only those).
        Index(
            "ix_ravel_runs_forked_from",
            "forked_from",
            postgresql_where=text("forked_from IS NOT NULL"),
            sqlite_where=text("forked_from IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    workflow: Mapped[str] = mapped_column(String(200))
    workflow_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    # The step to run next (or running now); ``seq`` counts committed steps, so a wake-up
    # carrying an old seq is recognised as stale.
    step: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts of the current seq that were claimed, and the last one with a step record:
    # the gap between them is attempts that died without committing.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    recorded_attempt: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts made before the last operator retry: the retry policy counts from here.
    retry_base: Mapped[int] = mapped_column(Integer, default=0)
    # Fencing token, bumped by every claim: a commit from a lease that was lost matches 0 rows.
    fencing: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)
    input: Mapped[dict[str, Any]] = mapped_column(JSONType)
    state: Mapped[dict[str, Any]] = mapped_column(JSONType)
    result: Mapped[Any | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    # How the last wait ended, for the step named by its ``then``.
    wait_result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    wake_at: Mapped[datetime | None]
    # When a wake-up was last published.
    published_at: Mapped[datetime | None]
    # When the reaper re-publishes the wake-up of a run still pending: set with each publish
    # (backing off while it stays pending), so the reaper's query returns only what is due.
    redispatch_at: Mapped[datetime | None]
    audit_seq: Mapped[int] = mapped_column(Integer, default=0)
    audit_head: Mapped[str] = mapped_column(HexDigest, default="")
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    # A fork: the run it was forked from and the step seq it started at (no foreign key: the
    # original may be deleted while its forks stay).
    forked_from: Mapped[str | None] = mapped_column(IdType)
    forked_from_seq: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StepRecord(Base):
    """One executed step attempt: when it ran, on which worker, and how it ended."""

    __tablename__ = "ravel_steps"
    __table_args__ = (UniqueConstraint("run_id", "seq", "attempt", name="uq_ravel_steps_attempt"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(IdType, ForeignKey("ravel_runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(200))
    # succeeded | failed | lost (the worker died before committing)
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(32))
    worker: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    # The failed attempt's traceback (file and line), redacted: for `ravel runs show`.
    traceback: Mapped[str | None] = mapped_column(Text)
    # The checkpoint the attempt started from (None on ``lost`` rows): the run's state, how
    # the wait before the step ended, and how many messages the conversation had. What a
    # fork from this step starts from, and the "before" of a state diff.
    state_before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    wait_result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    message_count: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime]


class Effect(Base):
    """The effects journal: a call's intent before it runs, its result after."""

    __tablename__ = "ravel_effects"

    run_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("ravel_runs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    # effect | llm | tool
    kind: Mapped[str] = mapped_column(String(16))
    # started (intent written, outcome unknown) | done
    status: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(64))
    calls: Mapped[int] = mapped_column(Integer, default=1)
    result: Mapped[Any | None] = mapped_column(JSONType)
    model: Mapped[str | None] = mapped_column(String(200))
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class Message(Base):
    """One message of a run's conversation; append-only, so a step never rewrites history."""

    __tablename__ = "ravel_messages"

    run_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("ravel_runs.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    message: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]


class Wait(Base):
    """Why a parked run waits: an approval, an event or a timer, and how it was decided."""

    __tablename__ = "ravel_waits"
    __table_args__ = (
        Index("ix_ravel_waits_run_id", "run_id"),
        # At most one open wait per run, enforced by the database.
        Index(
            "uq_ravel_waits_open_run",
            "run_id",
            unique=True,
            postgresql_where=text("decided_at IS NULL"),
            sqlite_where=text("decided_at IS NULL"),
        ),
        # Open waits with a deadline: approvals without one are most of what is parked.
        Index(
            "ix_ravel_waits_open_expiry",
            "expires_at",
            postgresql_where=text("decided_at IS NULL AND expires_at IS NOT NULL"),
            sqlite_where=text("decided_at IS NULL AND expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[str] = mapped_column(IdType, ForeignKey("ravel_runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    # approval | event
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    prompt: Mapped[str | None] = mapped_column(Text)
    approvers: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    then_step: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    # approved | rejected | expired | received | cancelled
    decision: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(200))
    decision_data: Mapped[Any | None] = mapped_column(JSONType)


class InboundEvent(Base):
    """An event sent to a run; kept until a matching ``WaitForEvent`` consumes it."""

    __tablename__ = "ravel_inbound_events"
    __table_args__ = (Index("ix_ravel_inbound_events_run_name", "run_id", "name"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(IdType, ForeignKey("ravel_runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    payload: Mapped[Any | None] = mapped_column(JSONType)
    actor: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime]
    consumed_at: Mapped[datetime | None]
    wait_id: Mapped[str | None] = mapped_column(IdType)


class AuditEvent(Base):
    """The append-only audit log, hash-chained per run so tampering is detectable."""

    __tablename__ = "ravel_audit"

    run_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("ravel_runs.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    step: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # The chain's link: the hash of the previous event and of every field of this one (the
    # previous event's hash is that row's ``hash``; it is not stored twice).
    hash: Mapped[str] = mapped_column(HexDigest)
