"""``Agent``: a Reason-Act-Verify loop compiled to a workflow with steps reason, act, verify.

* ``reason`` makes one LLM call (the conversation and the tool schemas) through the journal,
  so a retried or resumed step reuses the recorded response instead of paying again. The
  reply is checked before anything runs: an unknown tool, arguments that do not fit the
  tool's signature, malformed JSON or ``finish_reason="length"`` get a repair turn (the model
  is told what was wrong), at most ``max_repairs`` in a row, then the run fails.
* ``act`` runs the tool calls (see :mod:`pipeline.agent.act`).
* ``verify`` accepts the final answer (``Done({"answer": ...})``), or loops back to
  ``reason`` with feedback, or fails, by a rule function and/or an LLM judge (see
  :mod:`pipeline.agent.verify`).

The conversation lives in the run's append-only messages: a step writes only the messages it
adds, however long the history grows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from pipeline.agent import gates
from pipeline.agent.act import act
from pipeline.agent.budget import Budget
from pipeline.agent.conversation import agent_state, check_reply, excerpt
from pipeline.agent.llmcall import call_llm
from pipeline.agent.spec import AgentSpec, VerifyFn
from pipeline.agent.tools import Tool, tool
from pipeline.agent.verify import JUDGE_INSTRUCTIONS, verify
from pipeline.api import start_run
from pipeline.context import StepContext
from pipeline.errors import ConfigurationError
from pipeline.retry import RetryPolicy
from pipeline.transitions import Fail, Next, Transition, WaitForApproval
from pipeline.workflow import Workflow

REASON_RETRY = RetryPolicy(max_attempts=5, initial_delay=1.0, backoff=2.0, max_delay=60.0)


class Agent:
    """A Reason-Act-Verify agent; creating one defines the workflow ``name``.

    Start a run with ``start_run(name, {"message": "..."})``; it succeeds with
    ``{"answer": ..., "turns": ...}``.

    Args:
        name: the workflow's name (Celery tasks ``<name>.reason``, ``.act``, ``.verify``).
        instructions: the system message.
        tools: :class:`Tool` objects (from ``@tool``) or plain functions (read-only tools).
        model: the model; None uses ``RAVEL_MODEL`` when the step runs.
        verify: ``verify(ctx, answer)`` returning True (accept), a str (feedback: the model
            revises), False or a ``Fail`` (the run fails).
        budget: per-run limits checked before each call.
        max_turns: LLM calls the agent may make (repair turns included) before it fails.
        judge: True (or judge instructions) to have an LLM accept the answer too.
        judge_model: the judge's model; default the agent's.
        max_repairs: repair turns in a row for unusable replies before the run fails.
        max_output_tokens: sent as ``max_completion_tokens``; also what the budget reserves
            for each completion.
        retry: retry policy of ``reason`` and ``verify`` (LLM calls).
        tool_retry: retry policy of ``act`` (tools that raise).
        operators: who resolves unknown tool outcomes and budget stops.
        operator_timeout: how long those waits stay open (None: until decided).
        version: the workflow version; bump it for changes incompatible with runs in flight.
        queue: the Celery queue of the agent's steps.

    Attributes:
        spec: the settings the act and verify steps read (an :class:`AgentSpec`).
        workflow: the compiled workflow.
    """

    def __init__(
        self,
        name: str,
        instructions: str,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        model: str | None = None,
        verify: VerifyFn | None = None,
        budget: Budget | None = None,
        max_turns: int = 20,
        *,
        judge: bool | str = False,
        judge_model: str | None = None,
        max_repairs: int = 2,
        max_output_tokens: int | None = None,
        retry: RetryPolicy | None = None,
        tool_retry: RetryPolicy | None = None,
        operators: Sequence[str] = ("operator",),
        operator_timeout: timedelta | None = None,
        version: int = 1,
        queue: str | None = None,
    ) -> None:
        if max_turns < 1 or max_repairs < 0:
            raise ConfigurationError("max_turns must be >= 1 and max_repairs >= 0")
        if isinstance(operators, str) or not operators:
            raise ConfigurationError("operators must be a non-empty list of names")
        by_name: dict[str, Tool] = {}
        for t in tools:
            made = t if isinstance(t, Tool) else tool(t)
            if made.name in by_name:
                raise ConfigurationError(f"agent {name!r} has two tools named {made.name!r}")
            by_name[made.name] = made
        # The steps get this frozen view rather than the Agent, so they need not import this
        # module back, and settings cannot change under a running workflow.
        self.spec = AgentSpec(
            name=name,
            tools=MappingProxyType(by_name),
            model=model,
            budget=budget or Budget(),
            max_output_tokens=max_output_tokens,
            operators=tuple(operators),
            operator_timeout=operator_timeout,
            verify_fn=verify,
            judge=bool(judge),
            judge_instructions=judge if isinstance(judge, str) else JUDGE_INSTRUCTIONS,
            judge_model=judge_model,
        )
        self.instructions = instructions
        self.max_turns = max_turns
        self.max_repairs = max_repairs
        self.schemas = [t.schema() for t in by_name.values()]
        self.workflow = Workflow(name, version, queue=queue)
        step = self.workflow.step
        step(name="reason", start=True, retry=retry or REASON_RETRY)(self._reason)
        step(name="act", retry=tool_retry)(self._act)
        step(name="verify", retry=retry or REASON_RETRY)(self._verify)

    @property
    def name(self) -> str:
        """The agent's workflow name."""
        return self.spec.name

    @property
    def tools(self) -> Mapping[str, Tool]:
        """The agent's tools by name (read-only)."""
        return self.spec.tools

    @property
    def model(self) -> str | None:
        """The agent's model; None uses ``RAVEL_MODEL`` when the step runs."""
        return self.spec.model

    @property
    def budget(self) -> Budget:
        """The agent's per-run limits."""
        return self.spec.budget

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, tools={list(self.tools)})"

    # -- steps --------------------------------------------------------------------------

    def _reason(self, ctx: StepContext) -> Transition:
        a = agent_state(ctx)
        failed = gates.settle_budget_wait(ctx, a)
        if failed is not None:
            return failed
        if not ctx.messages:
            message = ctx.state.get("message")
            if not isinstance(message, str) or not message.strip():
                return Fail(
                    'an agent run needs "message" (a non-empty string) in its input: '
                    f'start_run({self.name!r}, {{"message": "..."}})'
                )
            ctx.add_message({"role": "system", "content": self.instructions})
            ctx.add_message({"role": "user", "content": message})
        turn = int(a["turns"])
        if turn >= self.max_turns:
            return Fail(
                f"agent {self.name!r} made max_turns={self.max_turns} LLM calls "
                "without an accepted answer"
            )
        record = call_llm(
            self.spec,
            ctx,
            a,
            f"llm:{turn}",
            list(ctx.messages),
            self.schemas,
            model=self.model,
            floor=int(a["prompt_tokens"]),
            then="reason",
        )
        if isinstance(record, WaitForApproval):
            return record
        a["turns"] = turn + 1
        a["prompt_tokens"] = int(record["usage"]["prompt_tokens"])
        a["completion_tokens"] = max(
            int(a["completion_tokens"]), int(record["usage"]["completion_tokens"])
        )
        reply = check_reply(record, self.tools, turn)
        ctx.add_message(reply.message)
        # The audit log tells a week later what the model decided and why, not only that a
        # step ran: its words (cut), the calls it asked for, what it cost.
        ctx.audit(
            "llm.replied",
            {
                "turn": turn,
                "model": record["model"],
                "finish_reason": record["finish_reason"],
                "tokens": record["usage"]["total_tokens"],
                "cost_usd": record["cost_usd"],
                "content": excerpt(record["content"]),
                "tool_calls": [c["function"]["name"] for c in record["tool_calls"]],
            },
        )
        if reply.usable:
            a["repairs"] = 0
            return Next("act") if reply.calls else Next("verify")
        # Every tool call gets its answer, so the conversation stays valid for a later retry.
        for message in reply.repair_messages():
            ctx.add_message(message)
        if reply.fatal is not None:
            return Fail(f"{reply.fatal}; no tool was run")
        a["repairs"] = int(a["repairs"]) + 1
        if a["repairs"] > self.max_repairs:
            count, a["repairs"] = a["repairs"], 0  # an operator's retry_run gets fresh repairs
            return Fail(
                f"the model's reply was unusable {count} times in a row "
                f"(max_repairs={self.max_repairs}); last: {reply.summary()}. "
                "No tool was run"
            )
        return Next("reason")

    def _act(self, ctx: StepContext) -> Transition:
        return act(self.spec, ctx)

    def _verify(self, ctx: StepContext) -> Transition:
        return verify(self.spec, ctx)

    def start(self, message: str, *, idempotency_key: str | None = None) -> str:
        """Start a run of this agent for ``message``; return the run id."""
        return start_run(self.name, {"message": message}, idempotency_key=idempotency_key)
