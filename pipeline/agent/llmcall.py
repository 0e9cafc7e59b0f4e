"""One budget-checked, journaled LLM call of an agent (used by the reason and verify steps)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline import faults, metrics
from pipeline.agent import gates, llm
from pipeline.settings import get_settings

if TYPE_CHECKING:
    from pipeline.agent.spec import AgentSpec
    from pipeline.context import StepContext
    from pipeline.transitions import WaitForApproval


def call_llm(
    agent: AgentSpec,
    ctx: StepContext,
    a: dict[str, Any],
    name: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    *,
    model: str | None,
    floor: int,
    then: str,
) -> dict[str, Any] | WaitForApproval:
    """One journaled LLM call, budget-checked first; the recorded reply on a replay.

    Args:
        agent: the calling agent's settings.
        ctx: the running step.
        a: the run's agent state (``agent_state(ctx)``).
        name: the call's journal name (``llm:<turn>``, ``llm:judge:<turn>``).
        messages: the conversation sent.
        tools: the tool schemas sent.
        model: the model; None uses ``RAVEL_MODEL``.
        floor: the least prompt size the budget estimate assumes.
        then: the step a budget wait resumes.

    Returns:
        The call's normalised record, or the wait that parks the run at its budget.

    Raises:
        BudgetExceeded: the call would exceed the budget (policy ``fail``).
        LLMError: the call failed (the step's retry policy decides what follows).
    """
    chosen = model or get_settings().model
    blocked = gates.llm_gate(
        agent,
        ctx,
        a,
        name=name,
        model=chosen,
        messages=messages,
        tools=tools,
        floor=floor,
        then=then,
    )
    if blocked is not None:
        return blocked
    fresh = False

    def call() -> dict[str, Any]:
        nonlocal fresh
        fresh = True
        with metrics.llm_call(ctx.workflow, chosen):
            return llm.complete(
                run_id=ctx.run_id,
                model=chosen,
                messages=messages,
                tools=tools,
                max_output_tokens=agent.max_output_tokens,
            )

    record: dict[str, Any] = ctx.journaled(name, "llm", call, usage=llm.usage_of)
    if fresh:
        # The response is journaled, the step's checkpoint not yet: a crash here must
        # resume with the recorded response, never a second paid call.
        faults.fault("after_llm_response_before_persist", ctx.step)
    if a.get("grant") == name:
        a.pop("grant")
    return record
