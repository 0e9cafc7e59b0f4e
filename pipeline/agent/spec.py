"""``AgentSpec``: what the agent's steps read from an agent, and nothing more.

The act and verify steps, the gates and the budget-checked LLM call take this frozen value
rather than the whole ``Agent``, so they do not depend on the module that defines ``Agent``
(which imports them to build its workflow) and cannot change an agent's settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from pipeline.agent.budget import Budget
from pipeline.agent.tools import Tool
from pipeline.transitions import Fail

if TYPE_CHECKING:
    from pipeline.context import StepContext

VerifyFn = Callable[["StepContext", str], "bool | str | Fail | None"]


@dataclass(frozen=True)
class AgentSpec:
    """An agent's settings as its steps see them (built by ``Agent``).

    Attributes:
        name: the agent's workflow name, shown in operator prompts.
        tools: the agent's tools by name (read-only).
        model: the agent's model; None uses ``RAVEL_MODEL`` when the step runs.
        budget: the per-run limits, before an operator's overrides.
        max_output_tokens: sent as ``max_completion_tokens``; what the budget reserves for
            each completion.
        operators: who resolves unknown tool outcomes and budget stops.
        operator_timeout: how long those waits stay open (None: until decided).
        verify_fn: the rule function of the verify step, if any.
        judge: whether an LLM judge must accept the answer too.
        judge_instructions: the judge's system message.
        judge_model: the judge's model; None uses ``model``.
    """

    name: str
    tools: Mapping[str, Tool]
    model: str | None
    budget: Budget
    max_output_tokens: int | None
    operators: tuple[str, ...]
    operator_timeout: timedelta | None
    verify_fn: VerifyFn | None
    judge: bool
    judge_instructions: str
    judge_model: str | None
