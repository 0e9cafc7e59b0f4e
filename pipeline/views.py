"""Read-only views returned by the public API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.serialize import JsonView
from pipeline.status import RunStatus


@dataclass(frozen=True)
class WaitView(JsonView):
    """An open wait of a parked run."""

    id: str
    kind: str
    prompt: str | None
    approvers: list[str]
    expires_at: datetime | None
    name: str | None = None
    data: dict[str, Any] | None = None
    then: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class WaitResult(JsonView):
    """How a wait ended, as the step named by its ``then`` sees it in ``ctx.wait_result``.

    Attributes:
        kind: ``approval`` or ``event`` (``timer`` for a durable ``Sleep``).
        decision: ``approved``, ``rejected``, ``expired`` or ``received``.
        actor: who decided (``None`` for an expiry).
        data: the approver's data, the rejection reason, or the event payload.
        at: when it was decided (database clock).
        wait_id: the decided wait.
        principal: the approvers entry the actor decided as (``alice``, ``group:finance``).
    """

    kind: str
    decision: str
    actor: str | None
    data: Any
    at: datetime | None
    wait_id: str | None = None
    principal: str | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> WaitResult:
        """Rebuild from the JSON stored on the run."""
        at = raw.get("at")
        return cls(
            kind=raw["kind"],
            decision=raw["decision"],
            actor=raw.get("actor"),
            data=raw.get("data"),
            at=datetime.fromisoformat(at) if isinstance(at, str) else None,
            wait_id=raw.get("wait_id"),
            principal=raw.get("principal"),
        )


@dataclass(frozen=True)
class RunView(JsonView):
    """A snapshot of a run, as stored."""

    id: str
    workflow: str
    status: RunStatus
    step: str
    state: dict[str, Any]
    wait: WaitView | None
    result: Any
    error: str | None
    attempt: int
    tokens: int
    cost_usd: float
    created_at: datetime
    updated_at: datetime
    workflow_version: int = 1
    seq: int = 0
    input: dict[str, Any] = field(default_factory=dict)
    #: for a fork (``fork_run``): the run it was forked from, and the step seq it started at
    forked_from: str | None = None
    forked_from_seq: int | None = None


@dataclass(frozen=True)
class HistoryEvent(JsonView):
    """One audit event of a run: who did what, when, at which step."""

    kind: str
    actor: str
    at: datetime
    step: str | None
    data: dict[str, Any]
    idx: int = 0


@dataclass(frozen=True)
class StepView(JsonView):
    """One executed step attempt."""

    seq: int
    attempt: int
    step: str
    status: str
    outcome: str | None
    worker: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime
    #: where a failed attempt raised (file, line, code), secrets redacted
    traceback: str | None = None


@dataclass(frozen=True)
class AuditVerification(JsonView):
    """The result of checking a run's audit hash chain."""

    run_id: str
    ok: bool
    events: int
    first_bad_idx: int | None = None
    problem: str | None = None
