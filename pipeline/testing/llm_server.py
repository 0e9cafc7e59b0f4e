"""A scripted OpenAI-compatible Chat Completions server for tests and demos.

A real HTTP server on 127.0.0.1, reached through the real OpenAI SDK
(``OpenAI(base_url=server.base_url, api_key="test", max_retries=0)``) from this process or from
worker subprocesses. It answers each request by its *turn* (the number of assistant messages it
carries), bills deterministic token usage per run (header ``X-Ravel-Run-Id``) and fails on cue
(429, 500, 400, hang, malformed tool JSON, huge content). Stdlib only.

In-process::

    with ScriptedLLMServer({"turns": [{"content": "hi"}]}) as server:
        client = OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        ...
        assert server.stats("run-1")["calls"] == 1

As a separate process (SIGTERM stops it)::

    python -m pipeline.testing serve --script script.json --port-file /tmp/llm.port

Then read its stats with :func:`fetch_stats` and clear them with :func:`reset_stats`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, cast
from urllib.parse import urlencode

from pipeline.testing._scripted import (
    ANONYMOUS_RUN,
    MAX_BODY_BYTES,
    RUN_ID_HEADER,
    Fault,
    Reply,
    Route,
    Script,
    ScriptedHTTPServer,
    ScriptError,
    ServerState,
    Stats,
    ToolCall,
    TurnStats,
)

__all__ = [
    "ANONYMOUS_RUN",
    "MAX_BODY_BYTES",
    "RUN_ID_HEADER",
    "Fault",
    "Reply",
    "Route",
    "Script",
    "ScriptError",
    "ScriptedLLMServer",
    "Stats",
    "ToolCall",
    "TurnStats",
    "fetch_stats",
    "main",
    "reset_stats",
]


class ScriptedLLMServer:
    """Serves a :class:`Script` as ``POST /v1/chat/completions`` on a daemon thread.

    Also serves ``GET /v1/models``, ``GET /_stats[?run_id=...]`` and ``POST /_reset``. Counters
    (billing and fault counters) live here, so every process calling the server shares them.
    """

    def __init__(
        self, script: Script | Mapping[str, Any], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        """Prepare the server; nothing listens until :meth:`start`.

        Args:
            script: A :class:`Script` or its JSON-compatible dict (validated here).
            host: IPv4 address to listen on.
            port: Port to listen on; 0 picks a free one.

        Raises:
            ScriptError: The script is malformed.
        """
        self._state = ServerState(
            _as_script(script), log_requests=os.environ.get("RAVEL_SCRIPTED_LLM_LOG") == "1"
        )
        self._host = host
        self._requested_port = port
        self._httpd: ScriptedHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (known once started)."""
        if self._httpd is None:
            raise RuntimeError("the scripted LLM server is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI ``base_url``, e.g. ``http://127.0.0.1:8123/v1``."""
        host = "127.0.0.1" if self._host in ("", "0.0.0.0") else self._host
        return f"http://{host}:{self.port}/v1"

    @property
    def script(self) -> Script:
        """The script being served."""
        return self._state.script

    def set_script(self, script: Script | Mapping[str, Any]) -> None:
        """Serve another script from the next request on (counters are kept).

        Raises:
            ScriptError: The script is malformed.
        """
        self._state.script = _as_script(script)

    def start(self) -> ScriptedLLMServer:
        """Listen and serve on a daemon thread; return self.

        Raises:
            RuntimeError: The server is already running.
            OSError: The port cannot be bound.
        """
        if self._httpd is not None:
            raise RuntimeError("the scripted LLM server is already running")
        self._state.stopping.clear()
        self._httpd = ScriptedHTTPServer((self._host, self._requested_port), self._state)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"scripted-llm-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, cut open connections and wake hanging requests (no-op if stopped)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._state.stopping.set()
        httpd.shutdown()
        self._state.cut_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> ScriptedLLMServer:
        """Start the server unless it is running."""
        return self if self._httpd is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def stats(self, run_id: str | None = None) -> Stats:
        """Return what was billed in total, or to one run (``"-"``: calls without a run id)."""
        return self._state.ledger.stats(run_id)

    def reset_stats(self) -> None:
        """Forget all counters, fault counters included, so scripted faults fire again."""
        self._state.ledger.reset()


def _as_script(script: Script | Mapping[str, Any]) -> Script:
    return script if isinstance(script, Script) else Script.from_dict(script)


# Across processes ------------------------------------------------------------------------------

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _root_url(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root.removesuffix("/v1")


def fetch_stats(base_url: str, run_id: str | None = None, *, timeout: float = 5.0) -> Stats:
    """Read a (possibly other-process) server's stats over HTTP.

    Args:
        base_url: The server's ``base_url`` (``.../v1``) or root URL.
        run_id: One run's stats; None for the totals.
        timeout: Seconds to wait for the answer.

    Returns:
        The same value as :meth:`ScriptedLLMServer.stats` in the server's process.

    Raises:
        urllib.error.URLError: The server cannot be reached or answered an error.
    """
    url = _root_url(base_url) + "/_stats"
    if run_id is not None:
        url += "?" + urlencode({"run_id": run_id})
    with _NO_PROXY.open(url, timeout=timeout) as response:
        return cast(Stats, json.loads(response.read()))


def reset_stats(base_url: str, *, timeout: float = 5.0) -> None:
    """Reset a (possibly other-process) server's counters over HTTP, fault counters included.

    Raises:
        urllib.error.URLError: The server cannot be reached or answered an error.
    """
    request = urllib.request.Request(_root_url(base_url) + "/_reset", data=b"", method="POST")
    with _NO_PROXY.open(request, timeout=timeout) as response:
        response.read()


# Command line ----------------------------------------------------------------------------------


def _write_port_file(path: Path, port: int) -> None:
    # Write then rename, so a parent polling for the file never reads a partial port.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{port}\n", encoding="utf-8")
    os.replace(partial, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m pipeline.testing serve --script FILE.json [--port N] [--port-file PATH]``.

    Serves in the foreground until SIGTERM or SIGINT, then stops cleanly and returns 0. The
    chosen port is written to ``--port-file`` once listening (and the file removed on exit).

    Returns:
        The exit status: 0, or 2 if the script cannot be loaded.
    """
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.testing", description="Scripted OpenAI-compatible LLM server."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a script until SIGTERM")
    serve.add_argument("--script", type=Path, required=True, help="JSON script file")
    serve.add_argument("--host", default="127.0.0.1", help="IPv4 address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    serve.add_argument("--port-file", type=Path, help="write the port here once listening")
    args = parser.parse_args(argv)
    try:
        script = Script.load(args.script)
    except (OSError, ScriptError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _on_signal)
    with ScriptedLLMServer(script, host=args.host, port=args.port) as server:
        try:
            if args.port_file is not None:
                _write_port_file(args.port_file, server.port)
            print(f"scripted LLM server listening on {server.base_url}", flush=True)
            while not stop.wait(0.2):
                pass
        finally:
            if args.port_file is not None:
                args.port_file.unlink(missing_ok=True)
    return 0
