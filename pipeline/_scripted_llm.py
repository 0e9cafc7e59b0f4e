"""Internals of the scripted OpenAI-compatible server: script, billing and HTTP handler.

:mod:`pipeline.testing` is the public face (server lifecycle, CLI, stats over HTTP) and
re-exports the public names. A script maps the *turn* of a request (the number of assistant
messages it carries) to a reply, so a retried or resumed request for the same turn always gets
the same answer and the same bill.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import socket
import socketserver
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypedDict, cast
from urllib.parse import parse_qs, urlsplit

ANONYMOUS_RUN = "-"
"""Run key of requests that carry no ``X-Ravel-Run-Id`` header."""

TOP_LEVEL_ROUTE = -1
"""Route index of the script's top-level turns (routes are numbered from 0)."""

_REPLY_KEYS = frozenset(
    {"content", "tool_calls", "finish_reason", "usage", "refusal", "fault", "fault_times"}
)
_FAULT_KEYS = frozenset(
    {
        "status",
        "retry_after",
        "message",
        "code",
        "type",
        "should_retry",
        "hang",
        "malformed_tool_json",
        "huge",
    }
)
_STATUS_ONLY_KEYS = ("retry_after", "message", "code", "type", "should_retry")
_MAX_HUGE_BYTES = 100 * 1024 * 1024


class ScriptError(ValueError):
    """The script is malformed; the message names the offending entry."""


class TurnStats(TypedDict):
    """Requests answered for one turn."""

    calls: int
    failed_calls: int


class Stats(TypedDict):
    """What the server billed, for one run or in total.

    ``calls`` counts 200 responses, ``failed_calls`` scripted error responses (429, 500, ...);
    the token counts sum the ``usage`` of the 200 responses. ``by_turn`` is keyed by the turn as
    a string (JSON object keys), so in-process and over-HTTP stats compare equal.
    """

    calls: int
    failed_calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    by_turn: dict[str, TurnStats]


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


@dataclass(frozen=True)
class Route:
    """Turns used when ``match`` occurs in the first user message."""

    match: str
    turns: tuple[Reply, ...]


@dataclass(frozen=True)
class Script:
    """What the server answers; build it with :meth:`from_dict` or :meth:`load`.

    Attributes:
        turns: Replies for turn 0, 1, 2, ...; past the end the last one repeats.
        routes: Checked in order; the first whose ``match`` occurs in the first user message
            replaces ``turns``.
    """

    turns: tuple[Reply, ...] = ()
    routes: tuple[Route, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Script:
        """Validate a JSON-compatible script.

        Args:
            data: ``{"turns": [reply, ...], "routes": [{"match": str, "turns": [...]}]}``.

        Returns:
            The validated script.

        Raises:
            ScriptError: An entry is missing, mistyped or unknown (typos are not ignored).
        """
        _require(isinstance(data, Mapping), "the script must be a JSON object")
        _reject_unknown(data, frozenset({"turns", "routes"}), "script")
        turns = _parse_turns(data.get("turns", []), "turns", allow_empty=True)
        routes_data = data.get("routes", [])
        _require(isinstance(routes_data, list), "routes must be a list")
        routes = []
        for index, route in enumerate(routes_data):
            where = f"routes[{index}]"
            _require(isinstance(route, Mapping), f"{where} must be an object")
            _reject_unknown(route, frozenset({"match", "turns"}), where)
            _require(isinstance(route.get("match"), str), f"{where}.match must be a string")
            routes.append(Route(route["match"], _parse_turns(route.get("turns"), f"{where}.turns")))
        _require(bool(turns or routes), "the script needs turns or routes")
        return cls(turns, tuple(routes))

    @classmethod
    def load(cls, path: str | Path) -> Script:
        """Read and validate a JSON script file.

        Raises:
            OSError: The file cannot be read.
            ScriptError: The file is not valid JSON or not a valid script.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ScriptError(f"{path}: invalid JSON: {exc}") from exc
        return cls.from_dict(data)

    def select(self, first_user_text: str) -> tuple[int, tuple[Reply, ...]] | None:
        """Return ``(route index, turns)`` for a conversation, or None if nothing applies."""
        for index, route in enumerate(self.routes):
            if route.match in first_user_text:
                return index, route.turns
        return (TOP_LEVEL_ROUTE, self.turns) if self.turns else None


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ScriptError(message)


def _reject_unknown(data: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    _require(not unknown, f"{where}: unknown keys {unknown}; expected some of {sorted(known)}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_turns(data: object, where: str, *, allow_empty: bool = False) -> tuple[Reply, ...]:
    _require(isinstance(data, list), f"{where} must be a list")
    assert isinstance(data, list)
    _require(allow_empty or bool(data), f"{where} must not be empty")
    return tuple(_parse_reply(reply, f"{where}[{index}]") for index, reply in enumerate(data))


def _parse_reply(data: object, where: str) -> Reply:
    _require(isinstance(data, Mapping), f"{where} must be an object")
    assert isinstance(data, Mapping)
    _reject_unknown(data, _REPLY_KEYS, where)
    tool_calls = _parse_tool_calls(data.get("tool_calls") or [], f"{where}.tool_calls")
    content = data.get("content", None if tool_calls else "")
    _require(content is None or isinstance(content, str), f"{where}.content must be str or null")
    finish_reason = data.get("finish_reason", "tool_calls" if tool_calls else "stop")
    _require(
        isinstance(finish_reason, str) and bool(finish_reason),
        f"{where}.finish_reason must be a non-empty string",
    )
    refusal = data.get("refusal")
    _require(refusal is None or isinstance(refusal, str), f"{where}.refusal must be str or null")
    usage = data.get("usage") or {}
    _require(isinstance(usage, Mapping), f"{where}.usage must be an object")
    _reject_unknown(usage, frozenset({"prompt_tokens", "completion_tokens"}), f"{where}.usage")
    for key, value in usage.items():
        _require(_is_int(value) and value >= 0, f"{where}.usage.{key} must be an int >= 0")
    fault = None if data.get("fault") is None else _parse_fault(data["fault"], f"{where}.fault")
    fault_times = data.get("fault_times")
    if fault_times is not None:
        _require(fault is not None, f"{where}.fault_times needs a fault")
        _require(_is_int(fault_times) and fault_times >= 0, f"{where}.fault_times must be >= 0")
    if fault is not None and fault.malformed_tool_json:
        _require(bool(tool_calls), f"{where}.fault.malformed_tool_json needs tool_calls")
    return Reply(
        content=content,
        tool_calls=tool_calls,
        finish_reason=finish_reason,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        refusal=refusal,
        fault=fault,
        fault_times=fault_times,
    )


def _parse_tool_calls(data: object, where: str) -> tuple[ToolCall, ...]:
    _require(isinstance(data, list), f"{where} must be a list")
    assert isinstance(data, list)
    calls = []
    for index, call in enumerate(data):
        at = f"{where}[{index}]"
        _require(isinstance(call, Mapping), f"{at} must be an object")
        _reject_unknown(call, frozenset({"name", "arguments"}), at)
        name = call.get("name")
        _require(isinstance(name, str) and bool(name), f"{at}.name must be a non-empty string")
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):
            try:
                arguments = json.dumps(arguments)
            except (TypeError, ValueError) as exc:
                raise ScriptError(f"{at}.arguments is not JSON-serialisable: {exc}") from exc
        calls.append(ToolCall(name, arguments))
    return tuple(calls)


def _parse_fault(data: object, where: str) -> Fault:
    _require(isinstance(data, Mapping), f"{where} must be an object")
    assert isinstance(data, Mapping)
    _reject_unknown(data, _FAULT_KEYS, where)
    status = data.get("status")
    if status is None:
        extra = [key for key in _STATUS_ONLY_KEYS if key in data]
        _require(not extra, f"{where}: {extra} only apply with a status")
    else:
        _require(_is_int(status) and 400 <= status <= 599, f"{where}.status must be 400-599")
        _require(
            not data.get("malformed_tool_json") and data.get("huge") is None,
            f"{where}: a status fault sends no reply to malform or pad",
        )
    retry_after = data.get("retry_after")
    _require(
        retry_after is None or (_is_number(retry_after) and retry_after >= 0),
        f"{where}.retry_after must be a number >= 0",
    )
    for key in ("message", "type"):
        _require(isinstance(data.get(key, ""), str), f"{where}.{key} must be a string")
    _require(data.get("code") is None or isinstance(data["code"], str), f"{where}.code must be str")
    should_retry = data.get("should_retry")
    _require(should_retry is None or isinstance(should_retry, bool), f"{where}.should_retry: bool")
    hang = data.get("hang", 0)
    _require(_is_number(hang) and hang >= 0, f"{where}.hang must be a number of seconds >= 0")
    malformed = data.get("malformed_tool_json", False)
    _require(isinstance(malformed, bool), f"{where}.malformed_tool_json must be a boolean")
    huge = data.get("huge")
    _require(
        huge is None or (_is_int(huge) and 0 < huge <= _MAX_HUGE_BYTES),
        f"{where}.huge must be an int of bytes in 1..{_MAX_HUGE_BYTES}",
    )
    _require(
        status is not None or hang > 0 or malformed or huge is not None,
        f"{where} does nothing: give status, hang, malformed_tool_json or huge",
    )
    return Fault(
        status=status,
        retry_after=None if retry_after is None else float(retry_after),
        message=data.get("message"),
        code=data.get("code"),
        type=data.get("type"),
        should_retry=should_retry,
        hang=float(hang),
        malformed_tool_json=malformed,
        huge=huge,
    )


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


def _empty_stats() -> Stats:
    return Stats(
        calls=0,
        failed_calls=0,
        prompt_tokens=0,
        completion_tokens=0,
        total_tokens=0,
        by_turn={},
    )


class Ledger:
    """Thread-safe counters: what was billed per run and in total, and the fault counters."""

    def __init__(self) -> None:
        """Start with nothing billed."""
        self._lock = threading.Lock()
        self._total = _empty_stats()
        self._runs: dict[str, Stats] = {}
        self._seen: dict[tuple[str, int, int], int] = {}

    def next_attempt(self, run: str, route: int, turn: int) -> int:
        """Count a request and return how many came before it for this run, route and turn."""
        with self._lock:
            key = (run, route, turn)
            seen = self._seen.get(key, 0)
            self._seen[key] = seen + 1
            return seen

    def record(self, run: str, turn: int, usage: Mapping[str, int] | None) -> None:
        """Record an answered request: billed with ``usage``, or failed if ``usage`` is None."""
        with self._lock:
            run_stats = self._runs.setdefault(run, _empty_stats())
            for stats in (self._total, run_stats):
                by_turn = stats["by_turn"].setdefault(str(turn), TurnStats(calls=0, failed_calls=0))
                if usage is None:
                    stats["failed_calls"] += 1
                    by_turn["failed_calls"] += 1
                    continue
                stats["calls"] += 1
                by_turn["calls"] += 1
                stats["prompt_tokens"] += usage["prompt_tokens"]
                stats["completion_tokens"] += usage["completion_tokens"]
                stats["total_tokens"] += usage["total_tokens"]

    def stats(self, run_id: str | None = None) -> Stats:
        """Return a copy of the totals, or of one run's counters (zeros for an unknown run)."""
        with self._lock:
            source = self._total if run_id is None else self._runs.get(run_id)
            return copy.deepcopy(source) if source is not None else _empty_stats()

    def reset(self) -> None:
        """Forget all counters, fault counters included (scripted faults fire again)."""
        with self._lock:
            self._total = _empty_stats()
            self._runs.clear()
            self._seen.clear()


# HTTP --------------------------------------------------------------------------------------------

RUN_ID_HEADER = "X-Ravel-Run-Id"
"""Request header naming the run a call is billed to (absent: run ``"-"``)."""

MAX_BODY_BYTES = 10 * 1024 * 1024
"""Larger request bodies are answered 413."""

_MODELS = ("scripted-model",)
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "requests",
}


class ServerState:
    """What all connections of one server share: the script, the ledger and the stop signal."""

    def __init__(self, script: Script, *, log_requests: bool = False) -> None:
        """Serve ``script``; log requests to stderr if ``log_requests``."""
        self.script = script
        self.ledger = Ledger()
        self.stopping = threading.Event()
        self.log_requests = log_requests
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def track(self, connection: socket.socket) -> None:
        """Remember an open client connection."""
        with self._lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        """Forget a closed client connection."""
        with self._lock:
            self._connections.discard(connection)

    def cut_connections(self) -> None:
        """Shut down every open connection (keep-alive ones would outlive the server)."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)


class ScriptedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server answering with :class:`ChatCompletionsHandler`."""

    daemon_threads = True
    block_on_close = False  # stop() must not wait for keep-alive or hanging connections
    request_queue_size = 128  # many workers connect at once; the default backlog is 5

    def __init__(self, address: tuple[str, int], state: ServerState) -> None:
        """Bind ``address`` (not yet serving)."""
        self.state = state
        super().__init__(address, ChatCompletionsHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn): slow without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class ChatCompletionsHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests from the shared :class:`ServerState`."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    server_version = "RavelScriptedLLM/1"

    @property
    def state(self) -> ServerState:
        """The state shared by all connections."""
        return cast(ScriptedHTTPServer, self.server).state

    def setup(self) -> None:
        super().setup()
        self.state.track(self.connection)

    def finish(self) -> None:
        self.state.untrack(self.connection)
        with contextlib.suppress(OSError):  # the client went away
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if self.state.log_requests:
            super().log_message(format, *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed request lines and unsupported methods: JSON instead of the stdlib's HTML.
        self._send_error_json(code, message or explain or "bad request", close=True)

    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def _guarded(self, handle: Callable[[], None]) -> None:
        try:
            handle()
        except Exception as exc:  # a bug here must still answer JSON, not drop the connection
            traceback.print_exc()
            self._send_error_json(500, f"scripted server error: {exc!r}", close=True)

    def _get(self) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        if path == "/v1/models":
            models = [
                {"id": m, "object": "model", "created": 0, "owned_by": "ravel"} for m in _MODELS
            ]
            self._send_json(200, {"object": "list", "data": models})
        elif path == "/_stats":
            run_ids = parse_qs(url.query, keep_blank_values=True).get("run_id")
            self._send_json(200, self.state.ledger.stats(run_ids[0] if run_ids else None))
        elif path in ("/v1/chat/completions", "/_reset"):
            self._send_error_json(405, f"use POST for {path}")
        else:
            self._send_error_json(404, f"unknown path {path!r}", error_type="not_found_error")

    def _post(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/v1/chat/completions":
            body = self._read_json_body()
            if body is not None:
                self._chat_completion(body)
        elif path == "/_reset":
            if self._read_body() is not None:
                self.state.ledger.reset()
                self._send_json(200, {"reset": True})
        elif path in ("/v1/models", "/_stats"):
            self._send_error_json(405, f"use GET for {path}")
        else:
            self._send_error_json(404, f"unknown path {path!r}", error_type="not_found_error")

    def _read_body(self) -> bytes | None:
        """Read the request body, or answer the error and return None."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send_error_json(411, "send a Content-Length, not a chunked body", close=True)
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self._send_error_json(400, "invalid Content-Length", close=True)
            return None
        if length > MAX_BODY_BYTES:
            if length <= 8 * MAX_BODY_BYTES:  # drain it, so the client reads the answer
                while length > 0 and (chunk := self.rfile.read(min(length, 1 << 16))):
                    length -= len(chunk)
            self._send_error_json(413, f"request body over {MAX_BODY_BYTES} bytes", close=True)
            return None
        return self.rfile.read(length)

    def _read_json_body(self) -> dict[str, Any] | None:
        raw = self._read_body()
        if raw is None:
            return None
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            self._send_error_json(400, f"the request body is not valid JSON: {exc}")
            return None
        error = _request_error(body)
        if error is not None:
            param, message = error
            self._send_error_json(400, message, param=param)
            return None
        return cast(dict[str, Any], body)

    def _chat_completion(self, body: dict[str, Any]) -> None:
        state = self.state
        run = self.headers.get(RUN_ID_HEADER) or ANONYMOUS_RUN
        messages = body["messages"]
        turn = count_turn(messages)
        selected = state.script.select(first_user_text(messages))
        if selected is None:
            self._send_error_json(400, "no scripted reply: no route matches the first user message")
            return
        route, turns = selected
        reply = turns[min(turn, len(turns) - 1)]
        attempt = state.ledger.next_attempt(run, route, turn)
        fault = reply.fault
        if fault is not None and reply.fault_times is not None and attempt >= reply.fault_times:
            fault = None
        if fault is not None and fault.hang > 0 and state.stopping.wait(fault.hang):
            self.close_connection = True  # stopped while hanging: no answer
            return
        headers = {"x-ravel-turn": str(turn)}
        if fault is not None and fault.status is not None:
            state.ledger.record(run, turn, None)
            self._send_fault(fault, headers)
            return
        completion = build_completion(
            reply,
            turn=turn,
            request=body,
            fault=fault,
            completion_id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
            created=int(time.time()),
        )
        state.ledger.record(run, turn, completion["usage"])
        self._send_json(200, completion, headers)

    def _send_fault(self, fault: Fault, headers: dict[str, str]) -> None:
        status = cast(int, fault.status)
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
            headers["retry-after-ms"] = str(round(fault.retry_after * 1000))
        if fault.should_retry is not None:
            headers["x-should-retry"] = "true" if fault.should_retry else "false"
        code = fault.code
        if code is None and status == 429:
            code = "rate_limit_exceeded"
        message = fault.message or f"scripted fault: HTTP {status}"
        self._send_error_json(status, message, error_type=fault.type, code=code, headers=headers)

    def _send_error_json(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> None:
        if error_type is None:
            error_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "error")
        error = {"message": message, "type": error_type, "param": param, "code": code}
        self._send_json(status, {"error": error}, headers, close=close)

    def _send_json(
        self,
        status: int,
        payload: object,
        headers: Mapping[str, str] | None = None,
        *,
        close: bool = False,
    ) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client went away (e.g. it timed out)


def _request_error(body: object) -> tuple[str | None, str] | None:
    """Return ``(param, message)`` saying why a chat completion body is invalid, or None."""
    if not isinstance(body, dict):
        return None, "the request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model", "model is required (a non-empty string)"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages", "messages must be a non-empty list"
    if not all(isinstance(message, dict) for message in messages):
        return "messages", "messages must contain objects"
    if body.get("stream"):
        return "stream", "stream is not supported by the scripted server: send stream=false"
    return None
