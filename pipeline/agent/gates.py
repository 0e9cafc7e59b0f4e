"""Where an agent run stops before a call: budgets, approvals, unknown outcomes.

Each gate either lets the call through or returns the transition that parks (or fails) the run.
What the run waits for is remembered in its state (``_agent.pending``), so the step named by
the wait's ``then`` knows which call the decision in ``ctx.wait_result`` is about. Only
``approve``/``reject`` (and the wait's expiry) decide; nothing the model writes does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.agent import budget as budgets
from pipeline.agent import pricing
from pipeline.agent.conversation import quote
from pipeline.agent.llm import estimate_tokens
from pipeline.errors import BudgetExceeded
from pipeline.transitions import Fail, WaitForApproval

if TYPE_CHECKING:
    from pipeline.agent.spec import AgentSpec
    from pipeline.agent.tools import Tool
    from pipeline.context import StepContext

BUDGET_STATE_KEY = "_budget"


def effective_budget(agent: AgentSpec, ctx: StepContext) -> budgets.Budget:
    """The agent's budget with the limits an operator set for this run."""
    return agent.budget.with_overrides(ctx.state.get(BUDGET_STATE_KEY))


def _will_call(ctx: StepContext, name: str) -> bool:
    entry = ctx.journal().get(name)
    return entry is None or not entry.done  # a journaled result is reused, not paid again


def llm_gate(
    agent: AgentSpec,
    ctx: StepContext,
    a: dict[str, Any],
    *,
    name: str,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    floor: int,
    then: str,
) -> WaitForApproval | None:
    """Check the budget before LLM call ``name``; None lets it through.

    The call is estimated as its request's size (at least ``floor``, the previous prompt, since
    the conversation only grows) plus a completion of ``max_output_tokens`` if set, else the
    largest completion so far.

    Raises:
        BudgetExceeded: the call would exceed the budget and the policy is ``fail``.
    """
    limits = effective_budget(agent, ctx)
    if not limits.limited or a.get("grant") == name or not _will_call(ctx, name):
        return None
    prompt = max(estimate_tokens([list(messages), list(tools)]), floor)
    completion = agent.max_output_tokens or int(a.get("completion_tokens", 0))
    price = pricing.price_of(model)
    cost = price.cost(prompt, completion) if price else None
    why = budgets.llm_overrun(
        limits, budgets.spent(ctx.run_id), prompt + completion, cost, f"LLM call {name}"
    )
    return None if why is None else _over_budget(agent, a, why, name, then)


def tool_gate(
    agent: AgentSpec, ctx: StepContext, a: dict[str, Any], name: str, tool: Tool
) -> WaitForApproval | None:
    """Check ``max_tool_calls`` before tool call ``name``; None lets it through.

    Raises:
        BudgetExceeded: the call would exceed the budget and the policy is ``fail``.
    """
    limits = effective_budget(agent, ctx)
    # A call already in the journal is counted there: calling it again adds no tool call.
    if limits.max_tool_calls is None or a.get("grant") == name or name in ctx.journal():
        return None
    why = budgets.tool_overrun(limits, budgets.spent(ctx.run_id), f"a call to {tool.name!r}")
    return None if why is None else _over_budget(agent, a, why, name, "act")


def _over_budget(
    agent: AgentSpec, a: dict[str, Any], why: str, name: str, then: str
) -> WaitForApproval:
    if agent.budget.on_exceeded == "fail":
        raise BudgetExceeded(why)
    a["pending"] = {"kind": "budget", "grant": name}
    prompt = (
        f"Agent {agent.name!r} stopped before a call: {why}. Approve with raised limits as "
        'data (e.g. {"max_tokens": 100000}) to go on, approve with no data to allow just this '
        "call, or reject to fail the run."
    )
    return WaitForApproval(
        prompt,
        list(agent.operators),
        agent.operator_timeout,
        then=then,
        data={"budget_exceeded": why, "call": name},
    )


def settle_budget_wait(ctx: StepContext, a: dict[str, Any]) -> Fail | None:
    """If the run was parked at its budget, apply the decision (Fail if not approved)."""
    pending = a.pop("pending", None) if ctx.wait_result is not None else None
    if pending and pending.get("kind") == "budget":
        return budget_decision(ctx, a, pending)
    return None


def not_approved(ctx: StepContext, why: str) -> Fail | None:
    """The run's failure if the operator's wait ended other than approved, else None.

    Args:
        ctx: the step resumed after the wait.
        why: what stopped the run, for the failure message.
    """
    result = ctx.wait_result
    assert result is not None
    if result.decision == "approved":
        return None
    who = f" by {result.actor}" if result.actor else ""
    return Fail(f"{why}: the operator wait was {result.decision}{who} ({quote(result.data, 300)})")


def approved_data(ctx: StepContext) -> dict[str, Any]:
    """The data an operator approved with (an empty dict if none)."""
    data = ctx.wait_result.data if ctx.wait_result else None
    return data if isinstance(data, dict) else {}


def budget_decision(ctx: StepContext, a: dict[str, Any], pending: Mapping[str, Any]) -> Fail | None:
    """Apply an operator's decision on a run parked at its budget; Fail if it was not approved."""
    failed = not_approved(ctx, "the run stopped at its budget")
    if failed is not None:
        return failed
    data = approved_data(ctx)
    raised = {k: v for k, v in data.items() if k in budgets.LIMITS}
    if raised:
        ctx.state[BUDGET_STATE_KEY] = {**ctx.state.get(BUDGET_STATE_KEY, {}), **raised}
    else:
        a["grant"] = pending.get("grant")
    return None


def ask_approval(
    agent: AgentSpec, a: dict[str, Any], tool: Tool, call_id: str, args: dict[str, Any]
) -> WaitForApproval:
    """Park the run on the tool's approval, showing the proposed call."""
    assert tool.approval is not None
    a["pending"] = {"kind": "approval", "tool_call_id": call_id}
    prompt = (
        f"Agent {agent.name!r} proposes to call tool {tool.name!r} with these arguments "
        "(JSON written by the model: read them as data, not as instructions):\n"
        f"{quote(args)}\nApprove to run the call; reject (with a reason) to refuse it."
    )
    return WaitForApproval(
        prompt,
        list(tool.approval.approvers),
        tool.approval.timeout,
        then="act",
        data={"tool": tool.name, "arguments": args, "tool_call_id": call_id},
    )


def ask_operator(
    agent: AgentSpec,
    a: dict[str, Any],
    tool: Tool,
    call_id: str,
    args: dict[str, Any],
    key: str,
    calls: int,
) -> WaitForApproval:
    """Park the run for an operator: a non-idempotent tool call's outcome is unknown."""
    a["pending"] = {"kind": "unknown_outcome", "tool_call_id": call_id, "idempotency_key": key}
    prompt = (
        f"Agent {agent.name!r}: the outcome of a call to tool {tool.name!r} is unknown (the "
        f"worker stopped after the call started, before its result was recorded; "
        f"{calls} start(s)). The tool is not idempotent, so Ravel will not repeat it on its "
        "own. Check the remote system, then approve with data "
        '{"resolution": "retry"} to call it again, or {"resolution": "skip", "result": ...} '
        "to record what it did; reject to fail the run.\n"
        f"Arguments (JSON written by the model): {quote(args)}\nIdempotency key: {key}"
    )
    return WaitForApproval(
        prompt,
        list(agent.operators),
        agent.operator_timeout,
        then="act",
        data={
            "tool": tool.name,
            "arguments": args,
            "tool_call_id": call_id,
            "unknown_outcome": True,
            "idempotency_key": key,
        },
    )
