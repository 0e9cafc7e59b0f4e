"""Run statuses and the one transition table every status change is checked against."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run is in its life. A ``str`` enum: ``status == "succeeded"`` works."""

    #: runnable: a wake-up is published (or due to be re-published by the reaper)
    PENDING = "pending"
    #: leased by a worker executing a step
    RUNNING = "running"
    #: waiting for ``wake_at``: a retry backoff or a durable ``Sleep``
    SLEEPING = "sleeping"
    #: parked on a wait (approval, event); holds no worker and no message
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """Whether the run can no longer change on its own."""
        return self in FINAL_STATUSES

    @property
    def is_live(self) -> bool:
        """Whether the run may still make progress (and so can be cancelled)."""
        return self in LIVE_STATUSES


FINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
LIVE_STATUSES = frozenset(
    {RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SLEEPING, RunStatus.WAITING}
)

#: target status -> the statuses a run may move to it from. ``running`` -> ``running`` is
#: a claim of an expired lease; ``failed`` -> ``pending`` is an operator's retry.
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset(
        {RunStatus.RUNNING, RunStatus.SLEEPING, RunStatus.WAITING, RunStatus.FAILED}
    ),
    RunStatus.RUNNING: frozenset({RunStatus.PENDING, RunStatus.RUNNING}),
    RunStatus.SLEEPING: frozenset({RunStatus.RUNNING}),
    RunStatus.WAITING: frozenset({RunStatus.RUNNING}),
    RunStatus.SUCCEEDED: frozenset({RunStatus.RUNNING}),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING}),
    RunStatus.CANCELLED: LIVE_STATUSES,
}


def sources(target: RunStatus) -> tuple[str, ...]:
    """The statuses a run may be in to move to ``target``, for a compare-and-set UPDATE."""
    return tuple(sorted(s.value for s in TRANSITIONS[target]))


def can_transition(current: RunStatus, target: RunStatus) -> bool:
    """Whether the table allows ``current`` -> ``target``."""
    return current in TRANSITIONS[target]
