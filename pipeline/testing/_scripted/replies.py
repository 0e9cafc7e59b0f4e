"""The scripted replies: a tool call, a fault, and the reply of one turn."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ToolCall:
    """One scripted tool call; ``arguments`` is the exact JSON string sent to the client."""

    name: str
    arguments: str


@dataclass(frozen=True)
class Fault:
    """How to fail instead of (or before) replying normally.

    Attributes:
        status: HTTP error status (400-599) answered with an OpenAI-style error body.
        retry_after: Seconds sent as ``retry-after`` (and ``retry-after-ms``) with ``status``.
        message: Error message; a default names the status.
        code: Error ``code`` (429 defaults to ``rate_limit_exceeded``).
        type: Error ``type`` (defaults by status, e.g. ``invalid_request_error`` for 400).
        should_retry: If set, sent as the ``x-should-retry`` header.
        hang: Seconds to wait before answering (normally, or with ``status``). A request
            answered normally is billed even if the client gave up waiting, as a real API would.
        malformed_tool_json: Send each tool call's arguments truncated to invalid JSON.
        huge: Pad the content to this many bytes.
    """

    status: int | None = None
    retry_after: float | None = None
    message: str | None = None
    code: str | None = None
    type: str | None = None
    should_retry: bool | None = None
    hang: float = 0.0
    malformed_tool_json: bool = False
    huge: int | None = None


@dataclass(frozen=True)
class Reply:
    """The scripted answer for one turn.

    Attributes:
        content: Assistant text, or None.
        tool_calls: Tool calls; their ids are ``call_<turn>_<index>``.
        finish_reason: Sent as is.
        prompt_tokens: Billed prompt tokens; None computes them from the request.
        completion_tokens: Billed completion tokens; None computes them from the reply.
        refusal: Sent as ``message.refusal``.
        fault: Fail instead of (or before) replying.
        fault_times: The fault applies to the first ``fault_times`` requests of this turn in a
            run; None means every request.
    """

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    refusal: str | None = None
    fault: Fault | None = None
    fault_times: int | None = None
