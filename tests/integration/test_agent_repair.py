"""Unusable model replies (malformed tool JSON, unknown tools, invented or mistyped parameters,
``finish_reason="length"``): a bounded repair turn, then a clear failure. No tool ever runs on
arguments its signature does not accept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline import Agent, start_run, tool
from pipeline.testing import ScriptedLLMServer
from tests.support.agents import ledger, messages, scripted_llm, settle, tool_messages, unique

ran: list[dict[str, Any]] = []


@tool
def reserve(item: str, quantity: int, rush: bool = False) -> str:
    """Reserve stock.

    Args:
        item: the SKU.
        quantity: how many units.
        rush: ship today.
    """
    ran.append({"item": item, "quantity": quantity, "rush": rush})
    return "reserved"


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLMServer]:
    ran.clear()
    with scripted_llm(monkeypatch) as server:
        yield server


def call(arguments: Any, name: str = "reserve") -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


GOOD = call({"item": "widget", "quantity": 5})
MALFORMED = {"tool_calls": [GOOD], "fault": {"malformed_tool_json": True}}


def run_agent(inline: Any, max_repairs: int = 2) -> Any:
    agent = Agent(unique("repair"), "Reserve stock.", [reserve], max_repairs=max_repairs)
    rid = start_run(agent.name, {"message": "Reserve 5 widgets."})
    return rid, settle(inline, rid)


def test_malformed_json_gets_a_repair_turn(any_db, inline, llm):
    llm.set_script({"turns": [MALFORMED, {"tool_calls": [GOOD]}, {"content": "reserved 5"}]})

    rid, run = run_agent(inline)

    assert run.status == "succeeded", run.error
    assert ran == [{"item": "widget", "quantity": 5, "rush": False}]  # only the good call ran
    first = tool_messages(rid)[0]
    assert first.startswith("Error: the arguments of 'reserve' are not valid JSON")
    assert "The tool was not run" in first
    rows = {r.name: r for r in ledger(rid)}
    assert "tool:call_0_0" not in rows
    raw = rows["llm:0"].result["tool_calls"][0]["function"]["arguments"]
    stored = messages(rid)[2]["tool_calls"][0]["function"]["arguments"]
    assert raw.startswith('{"item"') and stored == "{}"  # replayable to any server


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (MALFORMED, "are not valid JSON"),
        ({"tool_calls": [call({}, name="drop_tables")]}, 'there is no tool named "drop_tables"'),
        (
            {"tool_calls": [call({"item": "w", "quantity": 5, "discount": 90})]},
            "'reserve' has no parameter 'discount'",
        ),
        (
            {"tool_calls": [call({"item": "w", "quantity": "five"})]},
            "argument reserve.quantity must be an integer, got string",
        ),
        (
            {"tool_calls": [call({"item": "w"})]},
            "'reserve' is missing required argument 'quantity'",
        ),
        (
            {"tool_calls": [call({"item": "w", "quantity": 5, "rush": "yes"})]},
            "argument reserve.rush must be a boolean",
        ),
        ({"tool_calls": [call("[1, 2]")]}, "must be a JSON object, not array"),
        ({"content": "The reservation is", "finish_reason": "length"}, "cut off at the length"),
        ({"tool_calls": [GOOD], "finish_reason": "length"}, "cut off at the length"),
        ({"content": ""}, "the reply was empty"),
    ],
    ids=[
        "malformed",
        "unknown-tool",
        "invented-param",
        "wrong-type",
        "missing",
        "bool",
        "not-object",
        "length",
        "length-tool-call",
        "empty",
    ],
)
def test_bad_replies_are_repaired_a_bounded_number_of_times_then_fail(
    sqlite_db, inline, llm, reply, why
):
    llm.set_script({"turns": [reply]})  # the model never gets it right

    rid, run = run_agent(inline, max_repairs=2)

    assert run.status == "failed"
    assert "the model's reply was unusable 3 times in a row (max_repairs=2)" in run.error
    assert why in run.error and "No tool was run" in run.error
    assert llm.stats(rid)["calls"] == 3
    assert ran == []
    assert not [r for r in ledger(rid) if r.kind == "tool"]


def test_one_bad_call_holds_back_the_whole_reply(sqlite_db, inline, llm):
    llm.set_script(
        {
            "turns": [
                {"tool_calls": [GOOD, call({"item": "w", "quantity": 1, "sudo": True})]},
                {"content": "ok"},
            ]
        }
    )

    rid, run = run_agent(inline)

    assert run.status == "succeeded"
    assert ran == []
    first, second = tool_messages(rid)
    assert "another tool call in the same reply was invalid" in first
    assert "no parameter 'sudo'" in second


def test_a_content_filter_stop_fails_at_once(sqlite_db, inline, llm):
    llm.set_script({"turns": [{"content": "", "finish_reason": "content_filter"}]})

    rid, run = run_agent(inline)

    assert run.status == "failed" and "content_filter" in run.error
    assert llm.stats(rid)["calls"] == 1


def test_a_refusal_fails_and_runs_nothing(sqlite_db, inline, llm):
    llm.set_script(
        {"turns": [{"content": None, "refusal": "I can't help with that.", "tool_calls": [GOOD]}]}
    )

    rid, run = run_agent(inline)

    assert run.status == "failed" and "I can't help with that." in run.error
    assert ran == []
    assert messages(rid)[-1]["role"] == "tool"  # every tool call still has its answer
