"""Internals of the scripted OpenAI-compatible server: script, billing and HTTP handler.

:mod:`pipeline.testing` is the public face (server lifecycle, CLI, stats over HTTP) and
re-exports the public names. A script maps the *turn* of a request (the number of assistant
messages it carries) to a reply, so a retried or resumed request for the same turn always gets
the same answer and the same bill.

Modules, by responsibility:

* :mod:`.replies`: the reply dataclasses (:class:`ToolCall`, :class:`Fault`,
  :class:`Reply`).
* :mod:`.validation`: :class:`ScriptError` and the validation of JSON replies.
* :mod:`.script`: :class:`Script` and its :class:`Route` entries.
* :mod:`.completion`: reading a request's turn, rendering and billing a reply.
* :mod:`.stats`: the :class:`Stats` types and the thread-safe :class:`Ledger`.
* :mod:`.state`: :class:`ServerState`, shared by all connections.
* :mod:`.handler`: the HTTP server, request handler and fault responses.
"""

from __future__ import annotations

from pipeline.testing._scripted.completion import (
    build_completion,
    count_turn,
    default_completion_tokens,
    default_prompt_tokens,
    first_user_text,
)
from pipeline.testing._scripted.handler import (
    MAX_BODY_BYTES,
    RUN_ID_HEADER,
    ChatCompletionsHandler,
    ScriptedHTTPServer,
)
from pipeline.testing._scripted.replies import Fault, Reply, ToolCall
from pipeline.testing._scripted.script import TOP_LEVEL_ROUTE, Route, Script
from pipeline.testing._scripted.state import ServerState
from pipeline.testing._scripted.stats import ANONYMOUS_RUN, Ledger, Stats, TurnStats
from pipeline.testing._scripted.validation import ScriptError

__all__ = [
    "ANONYMOUS_RUN",
    "MAX_BODY_BYTES",
    "RUN_ID_HEADER",
    "TOP_LEVEL_ROUTE",
    "ChatCompletionsHandler",
    "Fault",
    "Ledger",
    "Reply",
    "Route",
    "Script",
    "ScriptError",
    "ScriptedHTTPServer",
    "ServerState",
    "Stats",
    "ToolCall",
    "TurnStats",
    "build_completion",
    "count_turn",
    "default_completion_tokens",
    "default_prompt_tokens",
    "first_user_text",
]
