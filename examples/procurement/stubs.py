"""The procurement story's outside world, on 127.0.0.1: a vendor, an ERP and a Slack sink.

The vendor honours ``Idempotency-Key`` the way draft-ietf-httpapi-idempotency-key-header
describes it: a replay returns the original response, a key reused with another payload is
refused (422), a key whose first request is still in progress is refused (409).
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

PRICES = {  # USD per unit, by vendor, for the market-price lookup
    "macbook pro 16": {"Apple Business": 2499.0, "CDW": 2449.0, "B&H": 2479.0},
    "macbook pro 14": {"Apple Business": 1999.0, "CDW": 1949.0, "B&H": 1979.0},
}
INVENTORY = {"macbook pro 16": 0, "macbook pro 14": 1, "usb-c dock": 14}


class World:
    """What the stubs hold: orders placed, ERP records, Slack messages."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.orders: list[dict[str, Any]] = []
        self.by_key: dict[str, tuple[str, dict[str, Any] | None]] = {}
        self.erp: dict[str, dict[str, Any]] = {}
        self.slack: list[dict[str, Any]] = []
        self.drafts: dict[str, dict[str, Any]] = {}
        self.order_posts = 0

    def draft(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Create a draft PO once per idempotency key; PO numbers are sequential."""
        with self.lock:
            if key not in self.drafts:
                self.drafts[key] = {
                    "po_number": f"PO-{1001 + len(self.drafts)}",
                    "status": "draft",
                    **payload,
                }
            return self.drafts[key]

    def post_message(self, message: dict[str, Any]) -> None:
        """Keep a chat message once per ``client_msg_id`` (as Slack de-duplicates)."""
        with self.lock:
            msg_id = message.get("client_msg_id")
            if msg_id is None or all(m.get("client_msg_id") != msg_id for m in self.slack):
                self.slack.append(message)

    def place_order(self, key: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Create an order once per idempotency key."""
        if os.environ.get("RAVEL_DEMO_VENDOR_IGNORES_KEYS"):
            # A vendor without idempotency (tests of the demo's proof use it).
            key = f"{key}:{len(self.orders)}"
        fingerprint = json.dumps(payload, sort_keys=True)
        with self.lock:
            self.order_posts += 1
            seen = self.by_key.get(key)
            if seen is not None:
                if seen[0] != fingerprint:
                    return 422, {"error": "Idempotency-Key reused with a different payload"}
                if seen[1] is None:
                    return 409, {"error": "a request with this Idempotency-Key is in progress"}
                return 200, seen[1]
            self.by_key[key] = (fingerprint, None)
        order = {
            "order_number": f"SO-{10400 + len(self.orders) + 1}",
            "status": "confirmed",
            **payload,
        }
        with self.lock:
            self.orders.append(order)
            self.by_key[key] = (fingerprint, order)
        return 201, order


class _Handler(BaseHTTPRequestHandler):
    world: World

    def log_message(self, format: str, *args: Any) -> None:  # keep the demo's output clean
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1_000_000:
            raise ValueError("body too large")
        raw = self.rfile.read(length) if length else b"{}"
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("body must be a JSON object")
        return value

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        item = query.get("item", "").strip().lower()
        if url.path == "/erp/inventory":
            self._send(200, {"item": item, "on_hand": INVENTORY.get(item, 0)})
        elif url.path == "/vendor/prices":
            quotes = PRICES.get(item)
            if quotes is None:
                self._send(404, {"error": f"no prices for {item!r}"})
            else:
                self._send(200, {"item": item, "quotes": quotes})
        elif url.path == "/vendor/orders":
            self._send(200, {"orders": self.world.orders, "posts": self.world.order_posts})
        elif url.path == "/slack/messages":
            self._send(200, {"messages": self.world.slack})
        elif url.path.startswith("/erp/purchase-orders"):
            self._send(200, {"records": self.world.erp})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        try:
            body = self._body()
        except ValueError as exc:
            self._send(400, {"error": str(exc)})
            return
        path = urlparse(self.path).path
        if path == "/vendor/orders":
            key = self.headers.get("Idempotency-Key")
            if not key:
                self._send(400, {"error": "Idempotency-Key header is required"})
                return
            self._send(*self.world.place_order(key, body))
        elif path == "/erp/drafts":
            key = self.headers.get("Idempotency-Key")
            if not key:
                self._send(400, {"error": "Idempotency-Key header is required"})
                return
            self._send(200, self.world.draft(key, body))
        elif path == "/erp/purchase-orders":
            po = str(body.get("po_number", ""))
            with self.world.lock:
                # Keyed by PO number: updating the same PO twice leaves one record.
                self.world.erp[po] = body
            self._send(200, {"po_number": po, "recorded": True})
        elif path == "/slack/messages":
            self.world.post_message(body)
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": "not found"})


class LocalWorld:
    """The stubs' HTTP server in a background thread."""

    def __init__(self) -> None:
        self.world = World()
        handler = type("Handler", (_Handler,), {"world": self.world})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> LocalWorld:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
