"""What a step returns: exactly one transition saying what the run does next."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class Next:
    """Run ``step`` next."""

    step: str


@dataclass(frozen=True)
class Done:
    """The run succeeded with ``result`` (JSON-serialisable)."""

    result: Any = None


@dataclass(frozen=True)
class Fail:
    """The run failed for ``reason``; no retry (an operator may ``retry_run`` it)."""

    reason: str


@dataclass(frozen=True)
class Sleep:
    """Park the run durably for ``duration``, then run ``then``. Holds no worker meanwhile."""

    duration: timedelta
    then: str


@dataclass(frozen=True)
class WaitForApproval:
    """Park the run until one of ``approvers`` approves or rejects, or ``timeout`` passes.

    The step named by ``then`` sees the outcome in ``ctx.wait_result``.
    """

    prompt: str
    approvers: list[str]
    timeout: timedelta | None = None
    then: str = ""
    data: dict[str, Any] | None = field(default=None)


@dataclass(frozen=True)
class WaitForEvent:
    """Park the run until ``send_event(run_id, name, payload)`` or ``timeout``; then ``then``."""

    name: str
    timeout: timedelta | None = None
    then: str = ""


Transition = Next | Done | Fail | Sleep | WaitForApproval | WaitForEvent
TRANSITION_TYPES = (Next, Done, Fail, Sleep, WaitForApproval, WaitForEvent)
