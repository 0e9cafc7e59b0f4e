"""What the store hands the rest of Ravel: small frozen dataclasses, never SQLAlchemy rows.

Code outside ``pipeline.store`` reads attributes of these and nothing else, so a column can
change without the engine, the API or the CLI noticing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

R = TypeVar("R")


def from_row(cls: type[R], row: Any) -> R:
    """Build a record from a row (or mapping) that has at least the record's fields."""
    mapping = row._mapping if hasattr(row, "_mapping") else row
    return cls(**{f.name: mapping[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class RunRecord:
    """A run as stored, with its token and cost totals."""

    id: str
    workflow: str
    workflow_version: int
    status: str
    step: str
    seq: int
    attempt: int
    retry_base: int
    input: dict[str, Any]
    state: dict[str, Any]
    result: Any
    error: str | None
    wait_result: dict[str, Any] | None
    idempotency_key: str | None
    wake_at: datetime | None
    audit_seq: int
    audit_head: str
    created_at: datetime
    updated_at: datetime
    tokens: int
    cost_usd: float
    forked_from: str | None
    forked_from_seq: int | None


@dataclass(frozen=True)
class WaitRecord:
    """A wait of a run: open, or how it was decided."""

    id: str
    run_id: str
    kind: str
    name: str | None
    prompt: str | None
    approvers: list[str] | None
    data: dict[str, Any] | None
    then_step: str
    expires_at: datetime | None
    created_at: datetime
    decided_at: datetime | None
    decision: str | None
    actor: str | None


@dataclass(frozen=True)
class WorkflowVersion:
    """A workflow version some worker serves (or served), as the registry records it.

    ``fresh``: a worker serving it was seen in the last few minutes.
    """

    name: str
    version: int
    start_step: str
    steps: dict[str, str]
    first_seen_at: datetime
    last_seen_at: datetime
    fresh: bool


@dataclass(frozen=True)
class StepAttempt:
    """One recorded attempt of a step."""

    seq: int
    attempt: int
    step: str
    status: str
    outcome: str | None
    worker: str | None
    error: str | None
    traceback: str | None
    started_at: datetime | None
    finished_at: datetime


@dataclass(frozen=True)
class AuditRecord:
    """One event of a run's hash-chained audit log."""

    run_id: str
    idx: int
    kind: str
    actor: str
    at: datetime
    step: str | None
    data: dict[str, Any]
    # The hash of the previous event and of this one's fields (the chain's link).
    hash: str


@dataclass(frozen=True)
class JournalCall:
    """One journaled call of a run, for ledgers and timelines."""

    seq: int
    name: str
    kind: str
    status: str
    idempotency_key: str
    calls: int
    result: Any
    model: str | None
    tokens: int
    cost_usd: float
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class DueWait:
    """An open wait whose deadline passed."""

    run_id: str
    id: str
