"""Bad input at the engine's doors, in-process on SQLite and PostgreSQL: deep JSON at every API
door, a step leaving an oversize state, a 50 MB LLM reply, a tool returning what JSON cannot
hold. Each is refused clearly and changes nothing it should not; the door still works after.

(Messages pushed into the broker, and a workflow module that fails to import, need real
workers: tests/e2e/test_bad_input.py.)
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline import (
    Agent,
    Done,
    Fail,
    InvalidInput,
    Next,
    RetryPolicy,
    WaitForApproval,
    Workflow,
    approve,
    get_run,
    retry_run,
    run_history,
    send_event,
    start_run,
    tool,
    verify_audit,
)
from pipeline.agent import llm as llm_client
from pipeline.agent.replycap import MAX_REPLY_BYTES
from pipeline.errors import LLMError
from pipeline.settings import reload_settings
from pipeline.testing import ScriptedLLMServer
from tests.integration._engine_support import unique
from tests.support.agents import ledger, messages, scripted_llm, settle
from tests.support.db_state import run_rows

FAST = RetryPolicy(max_attempts=3, initial_delay=0.05, backoff=1.0)
DEPTH = 10_000


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"d": value} if depth % 2 else [value]
    return value


DEEP_VALUES = [_nested(DEPTH), _nested(DEPTH + 1)]  # lists, then objects
DEEP_TEXT = '{"x": ' + "[" * DEPTH + "]" * DEPTH + "}"
TOO_DEEP = "nested more than 200 levels deep; flatten it"


def test_deep_json_is_refused_at_every_door_and_changes_nothing(any_db, inline):
    name = unique("deep_doors")
    flow = Workflow(name)

    @flow.step(start=True)
    def ask(ctx):
        if ctx.state.get("fail"):
            return Fail("asked to fail")
        return WaitForApproval(prompt="ok?", approvers=["ann"], then="end")

    @flow.step
    def end(ctx):
        return Done({"data": ctx.wait_result.data})

    waiting = start_run(name, {})
    failed = start_run(name, {"fail": True})
    inline.drain()
    assert get_run(waiting).status == "waiting" and get_run(failed).status == "failed"
    before = run_rows()

    for deep in [*DEEP_VALUES, DEEP_TEXT]:
        with pytest.raises(InvalidInput, match=f"the run input is {TOO_DEEP}"):
            start_run(name, {"x": deep} if not isinstance(deep, str) else deep)
        with pytest.raises(InvalidInput, match=f"the state patch is {TOO_DEEP}"):
            retry_run(failed, "ops", {"x": deep} if not isinstance(deep, str) else deep)
    for deep in DEEP_VALUES:
        with pytest.raises(InvalidInput, match=f"the event payload is {TOO_DEEP}"):
            send_event(waiting, "ping", deep)
        with pytest.raises(InvalidInput, match=f"the decision data is {TOO_DEEP}"):
            approve(waiting, "ann", {"x": deep})

    assert run_rows() == before
    assert not inline.queue, "a refused call published a wake-up"
    # Each door still opens to a value of ordinary depth.
    approve(waiting, "ann", {"x": _nested(50)})
    retry_run(failed, "ops", {"fail": False})
    inline.drain()
    assert get_run(waiting).result == {"data": {"x": _nested(50)}}
    assert get_run(failed).status == "waiting"


def test_a_state_over_the_cap_fails_the_step_and_keeps_the_previous_state(
    any_db, inline, monkeypatch
):
    monkeypatch.setenv("RAVEL_MAX_STATE_BYTES", "2000")
    reload_settings()
    calls: list[str] = []
    name = unique("fat_state")
    flow = Workflow(name)

    @flow.step(start=True)
    def fetch(ctx):
        ctx.state["order"] = ctx.effect("fetch", lambda: calls.append("fetch") or {"id": 7})
        return Next("grow")

    @flow.step(retry=FAST)
    def grow(ctx):
        ctx.effect("note", lambda: calls.append("note") or "noted")
        ctx.state["blob"] = "x" * 5000
        return Next("finish")

    @flow.step
    def finish(ctx):
        return Done({"blob": len(ctx.state["blob"])})

    rid = start_run(name, {"keep": 1})
    inline.drain()

    run = get_run(rid)
    assert run.status == "failed" and run.step == "grow"
    assert re.search(
        r"ValueTooLarge: ctx\.state is \d+ bytes of JSON, over the 2000-byte "
        r"limit; .*or raise RAVEL_MAX_STATE_BYTES",
        run.error,
    ), run.error
    assert run.state == {"keep": 1, "order": {"id": 7}}  # as the previous step left it
    kinds = [e.kind for e in run_history(rid)]
    assert kinds.count("step.succeeded") == 1 and kinds[-1] == "run.failed"
    assert verify_audit(rid).ok
    assert calls == ["fetch", "note"]  # InvalidInput is permanent: no retry paid again

    # Raising the limit and retrying resumes at the failed step, journaled effects kept.
    monkeypatch.setenv("RAVEL_MAX_STATE_BYTES", "20000")
    reload_settings()
    retry_run(rid, "ops")
    inline.drain()
    assert get_run(rid).result == {"blob": 5000}
    assert calls == ["fetch", "note"]


# -- agents: an LLM reply of 50 MB, tools returning what JSON cannot hold --------------------


class Order:
    """Not JSON: ``str()`` of it would reach the model as ``<Order object at 0x...>``."""


tool_calls: list[str] = []


@tool
def list_tags(item: str) -> Any:
    """The item's tags.

    Args:
        item: the SKU.
    """
    tool_calls.append("list_tags")
    return {"item": item, "tags": {"red", "small"}}


@tool
def load_order(item: str) -> Any:
    """The item's order.

    Args:
        item: the SKU.
    """
    tool_calls.append("load_order")
    return {"item": item, "order": Order()}


SHIPMENT = uuid.UUID("0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10")


@tool
def shipment(item: str) -> Any:
    """The item's shipment.

    Args:
        item: the SKU.
    """
    tool_calls.append("shipment")
    return {
        "id": SHIPMENT,
        "at": datetime.datetime(2024, 5, 1, 12, 30),
        "on": datetime.date(2024, 5, 1),
        "cost": decimal.Decimal("12.50"),
    }


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLMServer]:
    tool_calls.clear()
    with scripted_llm(monkeypatch) as server:
        yield server


def test_a_50mb_llm_reply_fails_the_attempt_unread(any_db, inline, llm):
    llm.set_script(
        {
            "routes": [
                {"match": "huge", "turns": [{"content": "big", "fault": {"huge": 50_000_000}}]}
            ],
            "turns": [{"content": "a normal answer"}],
        }
    )
    agent = Agent(unique("huge_reply"), "Answer.", retry=FAST)
    rid = start_run(agent.name, {"message": "say something huge"})
    before_messages = messages(rid)

    run = settle(inline, rid)

    assert run.status == "failed"  # permanent: a retry would pay for it again
    assert "the LLM reply is 500" in run.error  # 50,000,xxx bytes
    assert f"over the {MAX_REPLY_BYTES}-byte limit on LLM replies: it was not read" in run.error
    assert llm.stats(rid)["calls"] == 1
    # Nothing half-written: the call's intent has no result, the conversation no reply.
    [call] = ledger(rid)
    assert call.name == "llm:0" and call.status == "started" and call.result is None
    assert messages(rid) == before_messages
    assert verify_audit(rid).ok
    # The same process and client go on serving.
    other = start_run(agent.name, {"message": "say something"})
    assert settle(inline, other).result["answer"] == "a normal answer"


def test_a_chunked_reply_is_read_no_further_than_the_cap(monkeypatch):
    """A reply without a Content-Length is cut off once the bytes read pass the cap."""
    sent: list[int] = []
    total = 4 * MAX_REPLY_BYTES
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"x" * 65536
            try:
                while sum(sent) < total:
                    conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent.append(len(chunk))
            except OSError:
                pass  # the client hung up

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{listener.getsockname()[1]}/v1")
    reload_settings()
    try:
        with pytest.raises(
            LLMError,
            match="the LLM reply passed the 16777216-byte limit on "
            "LLM replies: it was read no further",
        ) as caught:
            llm_client.complete(
                run_id="r", model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        server.join(10)
    finally:
        listener.close()
        monkeypatch.undo()
        reload_settings()
    assert caught.value.retryable is False
    assert sum(sent) < total / 2, "the client read on past the cap"


@pytest.mark.parametrize(("tool_name", "kind"), [("list_tags", "set"), ("load_order", "Order")])
def test_a_tool_result_json_cannot_hold_fails_naming_the_tool(any_db, inline, llm, tool_name, kind):
    llm.set_script(
        {
            "turns": [
                {"tool_calls": [{"name": tool_name, "arguments": {"item": "A-1"}}]},
                {"content": "done"},
            ]
        }
    )
    agent = Agent(unique("odd_tool"), "Use tools.", [list_tags, load_order], tool_retry=FAST)
    rid = start_run(agent.name, {"message": "tags of A-1?"})

    run = settle(inline, rid)

    assert run.status == "failed"
    assert (
        f"InvalidInput: the result of tool {tool_name!r} is not JSON-serialisable "
        f"(Object of type {kind} is not JSON serializable)"
    ) in run.error
    assert tool_calls == [tool_name]  # permanent: not called again
    # Nothing half-written: the tool call's intent has no result, no tool message was added.
    rows = {row.name: row for row in ledger(rid)}
    tool_row = next(row for name, row in rows.items() if name.startswith("tool:"))
    assert tool_row.status == "started" and tool_row.result is None
    assert not [m for m in messages(rid) if m["role"] == "tool"]
    assert verify_audit(rid).ok


def test_dates_times_decimals_and_uuids_from_a_tool_become_text(sqlite_db, inline, llm):
    llm.set_script(
        {
            "turns": [
                {"tool_calls": [{"name": "shipment", "arguments": {"item": "A-1"}}]},
                {"content": "shipped"},
            ]
        }
    )
    agent = Agent(unique("dated_tool"), "Use tools.", [shipment])
    rid = start_run(agent.name, {"message": "when did A-1 ship?"})

    assert settle(inline, rid).status == "succeeded"
    [content] = [m["content"] for m in messages(rid) if m["role"] == "tool"]
    assert json.loads(content) == {
        "id": str(SHIPMENT),
        "at": "2024-05-01T12:30:00",
        "on": "2024-05-01",
        "cost": "12.50",
    }
