"""Reading a request and rendering (and billing) the scripted reply as a ChatCompletion."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.testing._scripted.replies import Fault, Reply, ToolCall

# Request reading -------------------------------------------------------------------------------


def count_turn(messages: Sequence[Mapping[str, Any]]) -> int:
    """Return the turn of a request: how many assistant messages it carries."""
    return sum(1 for message in messages if message.get("role") == "assistant")


def first_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Return the text of the first user message (text parts joined), or ``""``."""
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            parts = [part.get("text") for part in content if isinstance(part, Mapping)]
            return "\n".join(part for part in parts if isinstance(part, str))
        return ""
    return ""


# Replies and billing ---------------------------------------------------------------------------


def _json_tokens(value: object) -> int:
    return math.ceil(len(json.dumps(value, sort_keys=True, separators=(",", ":"))) / 4)


def default_prompt_tokens(request: Mapping[str, Any]) -> int:
    """Bill a request: a quarter token per character of its canonical messages and tools JSON."""
    tokens = _json_tokens(request.get("messages"))
    if request.get("tools") is not None:
        tokens += _json_tokens(request["tools"])
    return tokens


def default_completion_tokens(content: str | None, tool_calls: Sequence[ToolCall]) -> int:
    """Bill a reply: a quarter token per character of content and of each call's name+arguments."""
    tokens = math.ceil(len(content or "") / 4)
    tokens += sum(math.ceil(len(call.name + call.arguments) / 4) for call in tool_calls)
    return max(tokens, 1)


def _malform(arguments: str) -> str:
    cut = arguments[: len(arguments) // 2]
    try:
        json.loads(cut)
    except ValueError:
        return cut
    return cut + "{"  # the half still parsed (e.g. "12" -> "1"): make sure it does not


def build_completion(
    reply: Reply,
    *,
    turn: int,
    request: Mapping[str, Any],
    fault: Fault | None,
    completion_id: str,
    created: int,
) -> dict[str, Any]:
    """Render a reply as a ChatCompletion JSON object.

    Args:
        reply: The scripted reply of this turn.
        turn: The request's turn; it makes the tool call ids.
        request: The request body (its ``model`` is echoed, its size billed by default).
        fault: The active fault, if any; only its reply effects (malformed, huge) apply here.
        completion_id: The ``id`` field.
        created: The ``created`` field (Unix seconds).

    Returns:
        The ChatCompletion object, ``usage`` included.
    """
    calls = list(reply.tool_calls)
    if fault is not None and fault.malformed_tool_json:
        calls = [ToolCall(call.name, _malform(call.arguments)) for call in calls]
    content = reply.content
    if fault is not None and fault.huge is not None:
        missing = fault.huge - len((content or "").encode("utf-8"))
        content = (content or "") + "x" * max(missing, 0)
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": reply.refusal}
    if calls:
        message["tool_calls"] = [
            {
                "id": f"call_{turn}_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for index, call in enumerate(calls)
        ]
    prompt_tokens = reply.prompt_tokens
    if prompt_tokens is None:
        prompt_tokens = default_prompt_tokens(request)
    completion_tokens = reply.completion_tokens
    if completion_tokens is None:
        completion_tokens = default_completion_tokens(content, calls)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": request["model"],
        "choices": [
            {"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
