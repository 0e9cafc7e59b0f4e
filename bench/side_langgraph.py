"""LangGraph with its Postgres checkpointer side by side (the ``bench`` extra).

The same conversation as Ravel's: per turn one 200-character user message in and one model
reply out, through a one-node graph whose node sends the whole conversation to the scripted
server with the OpenAI SDK. The checkpointer saves the thread's state after every step, on a
fresh database of the same PostgreSQL server.
"""

from __future__ import annotations

import importlib.metadata
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.harness import stored_bytes
from tests.support.services import create_database, drop_database


def version() -> str | None:
    """langgraph-checkpoint-postgres's version, or None when it is not installed."""
    try:
        importlib.metadata.version("langgraph")
        return importlib.metadata.version("langgraph-checkpoint-postgres")
    except importlib.metadata.PackageNotFoundError:
        return None


class LangGraphChat:
    """A compiled chat graph checkpointed in its own database."""

    def __init__(self, url: str, graph: Any) -> None:
        """Run conversations through ``graph``; measure what is stored in ``url``."""
        self.url = url
        self._graph = graph

    def turn(self, thread: str, message: str) -> None:
        """One turn of conversation ``thread``: the user's ``message`` in, a reply out."""
        self._graph.invoke(
            {"messages": [{"role": "user", "content": message}]},
            {"configurable": {"thread_id": thread}},
        )

    def stored_bytes(self) -> tuple[int, int]:
        """:func:`bench.harness.stored_bytes` of the checkpointer's database."""
        return stored_bytes(self.url)


@contextmanager
def langgraph_chat(call_model: Callable[[list[dict[str, Any]]], str]) -> Iterator[LangGraphChat]:
    """A graph whose one node answers with ``call_model(messages)``; a fresh database."""
    from langchain_core.messages import convert_to_openai_messages
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.graph import END, START, MessagesState, StateGraph
    from psycopg import Connection
    from psycopg.rows import dict_row

    def chat(state: MessagesState) -> dict[str, Any]:
        reply = call_model(convert_to_openai_messages(state["messages"]))
        return {"messages": [{"role": "assistant", "content": reply}]}

    name = f"langgraph_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    conn = Connection.connect(
        url.replace("postgresql+psycopg://", "postgresql://"),
        autocommit=True,
        prepare_threshold=0,
        row_factory=dict_row,
    )
    try:
        saver = PostgresSaver(conn)
        saver.setup()
        builder = StateGraph(MessagesState)
        builder.add_node("chat", chat)
        builder.add_edge(START, "chat")
        builder.add_edge("chat", END)
        yield LangGraphChat(url, builder.compile(checkpointer=saver))
    finally:
        conn.close()
        time.sleep(0.1)
        drop_database(name)


def thread_id() -> str:
    """A new conversation's id."""
    return uuid.uuid4().hex
