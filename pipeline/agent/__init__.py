"""Reason-Act-Verify agents compiled to workflows (placeholder until issue 3 lands)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class Budget:
    """Per-run limits checked before each paid call."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_tool_calls: int | None = None


@dataclass(frozen=True)
class Approval:
    """An approval gate on a tool."""

    approvers: list[str]
    timeout: timedelta | None = None


def tool(*args: Any, **kwargs: Any) -> Any:
    """Declare a tool (implemented with issue 3)."""
    raise NotImplementedError("tools arrive with issue 3")


class Agent:
    """A Reason-Act-Verify agent (implemented with issue 3)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("agents arrive with issue 3")
