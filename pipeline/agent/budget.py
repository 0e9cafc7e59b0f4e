"""Per-run budgets, checked before each call: a call that would exceed one is not made.

What a run has spent is read from its effects journal (the same rows ``get_run().tokens`` and
``cost_usd`` sum), so calls of failed attempts and of earlier steps all count. An operator may
raise a run's limits through its state key ``_budget`` (``retry_run(..., state_patch=
{"_budget": {"max_tokens": 50000}})``, or approving a parked run with the new limits as data).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from pipeline.errors import ConfigurationError
from pipeline.store import get_db, journal

LIMITS = ("max_tokens", "max_cost_usd", "max_tool_calls")


@dataclass(frozen=True)
class Budget:
    """Per-run limits checked before each LLM call and each tool call.

    Attributes:
        max_tokens: prompt plus completion tokens of all the run's LLM calls.
        max_cost_usd: cost of all the run's LLM calls, from the price table.
        max_tool_calls: tool calls the run may make.
        on_exceeded: ``"fail"`` fails the run; ``"park"`` parks it for an operator, who may
            approve with raised limits as data (``{"max_tokens": 90000}``), or with no data
            to allow just the blocked call, or reject to fail it.
    """

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_tool_calls: int | None = None
    on_exceeded: Literal["fail", "park"] = "fail"

    def __post_init__(self) -> None:
        for name in LIMITS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 0):
                raise ConfigurationError(f"Budget {name} must be a number >= 0 or None")
        if self.on_exceeded not in ("fail", "park"):
            raise ConfigurationError("Budget on_exceeded must be 'fail' or 'park'")

    def with_overrides(self, overrides: Any) -> Budget:
        """This budget with the limits an operator set in the run's state applied."""
        if not isinstance(overrides, dict):
            return self
        valid: dict[str, Any] = {
            k: v
            for k, v in overrides.items()
            if k in LIMITS
            and (v is None or (isinstance(v, int | float) and not isinstance(v, bool) and v >= 0))
        }
        return replace(self, **valid)

    @property
    def limited(self) -> bool:
        """Whether any limit is set."""
        return any(getattr(self, name) is not None for name in LIMITS)


@dataclass(frozen=True)
class Spent:
    """What a run has used so far."""

    tokens: int
    cost_usd: float
    tool_calls: int


def spent(run_id: str) -> Spent:
    """The run's journaled usage (every step, every attempt)."""
    tokens, cost, tools = journal.usage(get_db(), run_id)
    return Spent(tokens, cost, tools)


def llm_overrun(
    budget: Budget, used: Spent, tokens: int, cost: float | None, what: str
) -> str | None:
    """Why an LLM call estimated at ``tokens`` and ``cost`` USD may not be made, or None.

    ``cost`` None means the model has no price, which fails a cost budget closed.
    """
    if budget.max_tokens is not None and used.tokens + tokens > budget.max_tokens:
        total = used.tokens + tokens
        return (
            f"budget max_tokens={budget.max_tokens} would be exceeded by {what}: "
            f"{used.tokens} tokens used + about {tokens} for the call = {total} "
            f"({total - budget.max_tokens} over); the call was not made"
        )
    if budget.max_cost_usd is not None:
        if cost is None:
            return (
                f"budget max_cost_usd={budget.max_cost_usd} cannot be checked for {what}: the "
                "model has no price; add it to RAVEL_PRICES. The call was not made"
            )
        if used.cost_usd + cost > budget.max_cost_usd:
            usd = used.cost_usd + cost
            return (
                f"budget max_cost_usd={budget.max_cost_usd:g} would be exceeded by {what}: "
                f"${used.cost_usd:.6f} spent + about ${cost:.6f} for the call = ${usd:.6f} "
                f"(${usd - budget.max_cost_usd:.6f} over); the call was not made"
            )
    return None


def tool_overrun(budget: Budget, used: Spent, what: str) -> str | None:
    """Why one more tool call may not be made, or None."""
    if budget.max_tool_calls is not None and used.tool_calls + 1 > budget.max_tool_calls:
        return (
            f"budget max_tool_calls={budget.max_tool_calls} would be exceeded by {what}: "
            f"{used.tool_calls} tool calls made, this would be call {used.tool_calls + 1} "
            f"({used.tool_calls + 1 - budget.max_tool_calls} over); the call was not made"
        )
    return None
