"""A local stand-in for Slack's Web API and response URLs that records what it was sent.

Point slack_sdk at it (``RAVEL_SLACK_API_URL=stub.api_url``; a click's ``response_url`` at
``stub.response_url(...)``). It answers ``chat.postMessage`` like Slack, can fail on cue,
and works across processes (it is a real HTTP server on 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode


@dataclass
class Received:
    """One request the stub got."""

    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class SlackStub:
    """The server; use as a context manager."""

    received: list[Received] = field(default_factory=list)
    failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode()
                with stub.lock:
                    stub.received.append(Received(self.path, dict(self.headers), body))
                    failure = stub.failures.pop(0) if stub.failures else None
                status, answer = failure or (200, stub.answer(self.path, body))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"{self.base}/respond/{name}"

    def answer(self, path: str, body: Any) -> dict[str, Any]:
        if path.endswith("/chat.postMessage"):
            return {"ok": True, "channel": body.get("channel"), "ts": f"{time.time():.6f}"}
        return {"ok": True}

    def fail_next(
        self, times: int = 1, status: int = 500, answer: dict[str, Any] | None = None
    ) -> None:
        with self.lock:
            self.failures.extend(
                [(status, answer or {"ok": False, "error": "fatal_error"})] * times
            )

    def sent(self, path_end: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path.endswith(path_end)]

    def posts(self) -> list[Received]:
        return self.sent("/chat.postMessage")

    def wait_for(self, path_end: str, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.sent(path_end)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        return self.sent(path_end)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> SlackStub:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def signed(
    secret: str, payload: dict[str, Any], timestamp: int | str | None = None
) -> tuple[bytes, dict[str, str]]:
    """A form body with ``payload`` and the headers Slack would sign it with."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return body, {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
