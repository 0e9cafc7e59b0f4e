"""The HTTP side: the threading server, the request handler and its fault and error responses."""

from __future__ import annotations

import contextlib
import json
import socketserver
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from pipeline.testing._scripted.completion import build_completion, count_turn, first_user_text
from pipeline.testing._scripted.replies import Fault
from pipeline.testing._scripted.state import ServerState
from pipeline.testing._scripted.stats import ANONYMOUS_RUN

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
