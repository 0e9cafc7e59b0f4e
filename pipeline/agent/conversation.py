"""The conversation as the agent reads it: its bookkeeping, open tool calls, and replies checked.

Model-written text is data, never a decision: it is checked here (tool names, arguments,
finish reason) before anything runs, and quoted as JSON wherever a person reads it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.errors import ToolArgumentsError

if TYPE_CHECKING:
    from pipeline.agent.tools import Tool
    from pipeline.context import StepContext

STATE_KEY = "_agent"
MAX_TOOL_OUTPUT = 32 * 1024  # bytes of a tool result sent to the model
MAX_ID = 200  # a tool call id names a journal entry (300 characters at most)
_OK_FINISH = ("stop", "tool_calls")
_SURROGATE = re.compile("[\ud800-\udfff]")


def agent_state(ctx: StepContext) -> dict[str, Any]:
    """The agent's bookkeeping in the run's state (saved with each step's commit).

    ``turns`` counts the agent's LLM calls, ``repairs`` consecutive unusable replies,
    ``prompt_tokens`` the last call's prompt and ``completion_tokens`` the largest completion
    so far (both for the budget's estimate of the next call), ``pending`` the open wait.
    """
    a = ctx.state.setdefault(STATE_KEY, {})
    for key in ("turns", "repairs", "prompt_tokens", "completion_tokens"):
        a.setdefault(key, 0)
    return a  # type: ignore[no-any-return]


def open_tool_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last assistant message's tool calls that have no tool message yet, in order."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") == "assistant":
            answered = {
                m.get("tool_call_id") for m in messages[index + 1 :] if m.get("role") == "tool"
            }
            return [c for c in message.get("tool_calls") or [] if c.get("id") not in answered]
    return []


def last_answer(messages: list[dict[str, Any]]) -> str | None:
    """The content of the last message, if it is a final assistant answer."""
    if messages and messages[-1].get("role") == "assistant" and not messages[-1].get("tool_calls"):
        content = messages[-1].get("content")
        return content if isinstance(content, str) else None
    return None


def first_user_text(messages: list[dict[str, Any]]) -> str:
    """The user's request: the first user message's text."""
    for message in messages:
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def tool_content(result: Any) -> str:
    """A tool's JSON result as the tool message's text, cut to 32 KB."""
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    # A lone surrogate (valid in a JSON value, not in UTF-8) would make the message
    # unsendable: write it as the JSON escape it stands for.
    text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    data = text.encode()
    if len(data) <= MAX_TOOL_OUTPUT:
        return text
    kept = data[: MAX_TOOL_OUTPUT - 100].decode(errors="ignore")
    return f"{kept}\n[truncated by Ravel: the result was {len(data)} bytes]"


def excerpt(text: str | None, limit: int = 500) -> str | None:
    """The start of a text, for the audit log (the full text is in the conversation)."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def quote(value: Any, limit: int = 4000) -> str:
    """Untrusted data as one line of ASCII JSON: newlines, bidi and zero-width characters
    come out as ``\\uXXXX`` escapes, so text written by a model cannot pose as instructions."""
    text = json.dumps(value, ensure_ascii=True, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Reply:
    """A model reply checked against the agent's tools.

    Attributes:
        message: the assistant message to append (tool call ids made unique).
        calls: the tool calls with their validated arguments, when all are valid.
        problem: why the reply as a whole is unusable (truncated, empty), or None.
        errors: tool call id -> why that call was refused.
        fatal: why the run cannot go on at all (a refusal, content filter), or None.
    """

    message: dict[str, Any]
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    problem: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    fatal: str | None = None

    @property
    def usable(self) -> bool:
        """Whether the reply can be acted on as it is."""
        return self.problem is None and not self.errors and self.fatal is None

    def repair_messages(self) -> list[dict[str, Any]]:
        """What tells the model why its reply was refused: one tool message per call (the API
        needs an answer to each), and a user note when there was no call to answer."""
        out = []
        for call in self.message.get("tool_calls") or []:
            why = (
                self.errors.get(call["id"])
                or self.problem
                or self.fatal
                or "another tool call in the same reply was invalid"
            )
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": call["id"],
                    "content": f"Error: {why}. The tool was not run; call it again with "
                    "arguments that match its parameters.",
                }
            )
        if self.problem and not out:
            out.append(
                {
                    "role": "user",
                    "content": f"[Ravel] Your reply was refused: {self.problem}. Reply again.",
                }
            )
        return out

    def summary(self) -> str:
        """One line on what was wrong."""
        return self.problem or "; ".join(self.errors.values()) or self.fatal or "nothing"


def check_reply(record: Mapping[str, Any], tools: Mapping[str, Tool], turn: int) -> Reply:
    """Check a normalised LLM reply: finish reason, tool names and arguments."""
    finish = record.get("finish_reason")
    content = record.get("content")
    calls = _unique_ids(record.get("tool_calls") or [], turn)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [_replayable(c) for c in calls]
    reply = Reply(message)
    if record.get("refusal") or finish == "content_filter":
        reply.fatal = (
            f"the model did not answer (finish_reason={finish!r}, refusal: "
            f"{quote(record.get('refusal'), 300)})"
        )
        return reply
    if finish == "length":
        reply.problem = (
            "the reply was cut off at the length limit (finish_reason=length); be more concise"
        )
        return reply
    if finish not in _OK_FINISH:
        reply.fatal = (
            f"the LLM server sent finish_reason {quote(finish, 80)}, which Ravel does not act on"
        )
        return reply
    if not calls and not (content or "").strip():
        reply.problem = "the reply was empty: answer the request or call a tool"
    for call in calls:
        name = call["function"]["name"]
        found = tools.get(name)
        if found is None:
            reply.errors[call["id"]] = (
                f"there is no tool named {quote(name, 100)}; the tools "
                f"are: {', '.join(tools) or 'none'}"
            )
            continue
        try:
            reply.calls.append((call, found.parse_arguments(call["function"]["arguments"])))
        except ToolArgumentsError as exc:
            reply.errors[call["id"]] = str(exc)
    return reply


def _replayable(call: dict[str, Any]) -> dict[str, Any]:
    """The call as the conversation keeps it: arguments that are not JSON become ``{}``.

    Some compatible servers parse the arguments of past calls and refuse the whole request if
    they cannot; the model still learns what was wrong from the tool message, and the raw
    reply stays in the journal.
    """
    arguments = call["function"].get("arguments")
    try:
        json.loads(arguments if isinstance(arguments, str) else "")
    except ValueError:
        return {**call, "function": {**call["function"], "arguments": "{}"}}
    return call


def _unique_ids(calls: list[dict[str, Any]], turn: int) -> list[dict[str, Any]]:
    """Tool calls with ids usable as journal names: present, short and unique in the reply."""
    seen: set[str] = set()
    out = []
    for index, call in enumerate(calls):
        cid = call.get("id")
        if not isinstance(cid, str) or not cid or len(cid) > MAX_ID or cid in seen:
            cid = f"call_{turn}_{index}"
        seen.add(cid)
        out.append({**call, "id": cid})
    return out
