"""The ``act`` step: run the tool calls the model asked for, each through the journal.

Per call, in the order the model asked:

* a result already journaled is reused (the tool is not called again);
* an intent without a result is an *unknown outcome* (the worker died mid-call): a ``read`` or
  ``idempotent`` tool is called again under the same idempotency key; a ``write`` tool parks
  the run for an operator, who approves ``{"resolution": "retry"}`` (call again with the same
  key), ``{"resolution": "skip", "result": ...}`` (record that result), or rejects (the run
  fails). A tool that *raised* is not an unknown outcome: raising means "nothing was done",
  and the step's retry policy runs it again;
* a tool with an approval gate parks the run with the proposed call; an approval runs it, a
  rejection (or an expiry, with ``on_timeout="reject"``) becomes the tool's result;
* the budget's ``max_tool_calls`` is checked before a call is proposed or made.
"""

from __future__ import annotations

import datetime
import decimal
import logging
import uuid
from typing import TYPE_CHECKING, Any

from pipeline.agent import gates
from pipeline.agent.conversation import (
    agent_state,
    excerpt,
    open_tool_calls,
    quote,
    tool_content,
)
from pipeline.errors import ToolArgumentsError
from pipeline.jsonutil import to_json_value
from pipeline.redact import redact, redact_text
from pipeline.transitions import Fail, Next, Transition

if TYPE_CHECKING:
    from pipeline.agent.spec import AgentSpec
    from pipeline.agent.tools import Tool
    from pipeline.context import StepContext
    from pipeline.store.journal import JournalEntry

log = logging.getLogger("ravel.agent")


def act(agent: AgentSpec, ctx: StepContext) -> Transition:
    """Answer every open tool call of the last assistant message, then reason again."""
    a = agent_state(ctx)
    pending = a.pop("pending", None) if ctx.wait_result is not None else None
    if pending and pending.get("kind") == "budget":
        failed = gates.budget_decision(ctx, a, pending)
        if failed is not None:
            return failed
        pending = None
    for call in open_tool_calls(ctx.messages):
        decision = pending if pending and pending.get("tool_call_id") == call["id"] else None
        outcome = _answer(agent, ctx, a, call, decision)
        if not isinstance(outcome, str):
            return outcome
        ctx.add_message({"role": "tool", "tool_call_id": call["id"], "content": outcome})
        ctx.audit(
            "tool.called",
            {
                "tool": call["function"]["name"],
                "call_id": call["id"],
                "arguments": excerpt(call["function"]["arguments"]),
                "result": excerpt(outcome),
            },
        )
    a.pop("grant", None)
    return Next("reason")


def _answer(
    agent: AgentSpec,
    ctx: StepContext,
    a: dict[str, Any],
    call: dict[str, Any],
    decision: dict[str, Any] | None,
) -> str | Transition:
    """The tool message for one call, or the transition that stops the step before it."""
    name = f"tool:{call['id']}"
    tool = agent.tools.get(call["function"]["name"])
    try:
        if tool is None:
            raise ToolArgumentsError(f"unknown tool {quote(call['function']['name'], 100)}")
        args = tool.parse_arguments(call["function"]["arguments"])
    except ToolArgumentsError as exc:  # reason checked them: only a changed agent gets here
        return Fail(f"refusing tool call {call['id']}: {exc}; the tool was not run")
    entry = ctx.journal().get(name)
    if entry is not None and entry.done:
        return tool_content(entry.result)
    if decision is not None and decision["kind"] == "unknown_outcome":
        return _resolve_unknown(ctx, tool, args, name, decision)
    if entry is not None and not _raised(ctx, name, entry):
        if tool.effect == "write":
            log.warning("run %s: %s outcome unknown; parking for an operator", ctx.run_id, name)
            return gates.ask_operator(
                agent, a, tool, call["id"], args, entry.idempotency_key, entry.calls
            )
        log.info(
            "run %s: %s outcome unknown; %s tool called again with the same key",
            ctx.run_id,
            name,
            tool.effect,
        )
        return _run(ctx, tool, args, name, entry.idempotency_key)
    if tool.approval is not None:
        if decision is None or decision["kind"] != "approval":
            return gates.tool_gate(agent, ctx, a, name, tool) or gates.ask_approval(
                agent, a, tool, call["id"], args
            )
        refused = _refusal(ctx, tool)
        if refused is not None:
            return refused
    blocked = gates.tool_gate(agent, ctx, a, name, tool)
    if blocked is not None:
        return blocked
    return _run(ctx, tool, args, name, ctx.idempotency_key(name))


def _refusal(ctx: StepContext, tool: Tool) -> str | Transition | None:
    """None if the approval was granted; else the tool message (or Fail) saying it was not."""
    result = ctx.wait_result
    assert result is not None and tool.approval is not None
    if result.decision == "approved":
        return None
    if result.decision == "expired":
        if tool.approval.on_timeout == "fail":
            return Fail(f"the approval of a call to {tool.name!r} expired; the call was not made")
        return (
            f"REJECTED: the approval request for this call to {tool.name} expired "
            "unanswered. The call was not made."
        )
    reason = result.data if isinstance(result.data, str) and result.data else "none given"
    return (
        f"REJECTED: {result.actor} rejected this call to {tool.name}. The call was not "
        f"made. Reason: {reason}"
    )


def _resolve_unknown(
    ctx: StepContext, tool: Tool, args: dict[str, Any], name: str, decision: dict[str, Any]
) -> str | Transition:
    """Apply an operator's resolution of an unknown outcome."""
    failed = gates.not_approved(ctx, f"the outcome of a call to {tool.name!r} is unknown")
    if failed is not None:
        return failed
    data = gates.approved_data(ctx)
    resolution = data.get("resolution", "retry")
    if resolution == "skip":
        return tool_content(redact(data.get("result")))
    if resolution != "retry":
        return Fail(
            f"unknown resolution {quote(resolution, 80)} for the call to {tool.name!r}:"
            ' approve with {"resolution": "retry"} or {"resolution": "skip", ...}'
        )
    # The same key the first call carried, so the remote system can still deduplicate.
    return _run(ctx, tool, args, name, str(decision["idempotency_key"]))


_TEXT_TYPES = (datetime.date, datetime.time, decimal.Decimal, uuid.UUID)


def _as_text(value: Any) -> str:
    """Dates, times, decimals and UUIDs as their text; anything else is refused.

    ``str()`` of a set or an arbitrary object ("<Order object at 0x7f...>") would reach the
    model as meaningless text: the tool's author is told instead.
    """
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, _TEXT_TYPES):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _failure_marker(name: str, calls: int) -> str:
    return f"{name}!raised{calls}"


def _raised(ctx: StepContext, name: str, entry: JournalEntry) -> bool:
    """Whether the latest start of this call ended with the tool raising (a known failure)."""
    marker = ctx.journal().get(_failure_marker(name, entry.calls))
    return marker is not None and marker.done


def _run(ctx: StepContext, tool: Tool, args: dict[str, Any], name: str, key: str) -> str:
    """Call the tool through the journal and return its tool message."""
    raised = False

    def call() -> Any:
        nonlocal raised
        try:
            value = tool.invoke(args, key)
        except Exception:
            raised = True
            raise
        # JSON, or a clear InvalidInput when not JSON, too large or too deep; the journal
        # redacts secrets, so they stay out of it and out of the conversation.
        return to_json_value(value, what=f"the result of tool {tool.name!r}", default=_as_text)

    before = ctx.journal().get(name)
    try:
        result = ctx.journaled(name, "tool", call, key=key)
    except Exception as exc:
        if raised:  # record that this start ended in an error, so a retry is not "unknown"
            starts = before.calls + 1 if before is not None else 1
            error = redact_text(f"{type(exc).__name__}: {exc}", 1000)
            ctx.journaled(_failure_marker(name, starts), "effect", lambda: {"error": error})
        raise
    return tool_content(result)
