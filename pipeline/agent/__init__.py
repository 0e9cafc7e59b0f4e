"""Reason-Act-Verify agents compiled to workflows.

Modules: :mod:`~pipeline.agent.agent` (``Agent`` and its reason step),
:mod:`~pipeline.agent.act` and :mod:`~pipeline.agent.verify` (the other two steps),
:mod:`~pipeline.agent.tools` and :mod:`~pipeline.agent.schema` (``@tool``),
:mod:`~pipeline.agent.llm` (the OpenAI client), :mod:`~pipeline.agent.budget`,
:mod:`~pipeline.agent.pricing`, :mod:`~pipeline.agent.gates` (budget, approval and
unknown-outcome waits), :mod:`~pipeline.agent.conversation`, :mod:`~pipeline.agent.llmcall`
(the budget-checked, journaled LLM call). The steps and gates read an agent only through
:class:`~pipeline.agent.spec.AgentSpec`; only this module imports :mod:`~pipeline.agent.agent`.
"""

from pipeline.agent.agent import Agent
from pipeline.agent.budget import Budget
from pipeline.agent.tools import Approval, Tool, tool

__all__ = ["Agent", "Approval", "Budget", "Tool", "tool"]
