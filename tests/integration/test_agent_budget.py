"""Budgets are checked before the call: a call that would exceed one is never made."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline import Agent, Budget, approve, reject, start_run, tool
from pipeline.testing import ScriptedLLMServer
from tests.support.agents import scripted_llm, settle, unique

lookups: list[str] = []


@tool
def lookup(item: str) -> int:
    """Count an item.

    Args:
        item: the SKU.
    """
    lookups.append(item)
    return 7


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLMServer]:
    lookups.clear()
    with scripted_llm(monkeypatch) as server:
        yield server


def looping_script(llm: ScriptedLLMServer, **usage: int) -> None:
    """Every turn asks for one lookup and bills a fixed usage."""
    turn: dict[str, Any] = {"tool_calls": [{"name": "lookup", "arguments": {"item": "w"}}]}
    if usage:
        turn["usage"] = usage
    llm.set_script({"turns": [turn]})


def test_max_tokens_stops_the_run_before_the_call_that_would_exceed_it(any_db, inline, llm):
    looping_script(llm, prompt_tokens=100, completion_tokens=50)
    agent = Agent(unique("budget"), "Count.", [lookup], budget=Budget(max_tokens=400))
    rid = start_run(agent.name, {"message": "Count w, again and again."})

    run = settle(inline, rid)

    assert run.status == "failed"
    assert "BudgetExceeded: budget max_tokens=400 would be exceeded by LLM call llm:2" in run.error
    assert "300 tokens used" in run.error and "over" in run.error and "not made" in run.error
    assert llm.stats(rid)["calls"] == 2  # the third call was never sent
    assert run.tokens == 300 <= 400


def test_max_cost_stops_the_run_before_the_call(sqlite_db, inline, llm):
    # gpt-4o-mini: 1M prompt tokens cost $0.15, 1M completion tokens $0.60
    looping_script(llm, prompt_tokens=1_000_000, completion_tokens=0)
    agent = Agent(unique("budget"), "Count.", [lookup], budget=Budget(max_cost_usd=0.40))
    rid = start_run(agent.name, {"message": "Count w."})

    run = settle(inline, rid)

    assert run.status == "failed" and "budget max_cost_usd=0.4 would be exceeded" in run.error
    assert llm.stats(rid)["calls"] == 2
    assert run.cost_usd == pytest.approx(0.30)


def test_max_tool_calls_stops_before_the_tool_runs(any_db, inline, llm):
    looping_script(llm)
    agent = Agent(unique("budget"), "Count.", [lookup], budget=Budget(max_tool_calls=2))
    rid = start_run(agent.name, {"message": "Count w."})

    run = settle(inline, rid)

    assert run.status == "failed"
    assert "budget max_tool_calls=2 would be exceeded by a call to 'lookup'" in run.error
    assert "this would be call 3 (1 over)" in run.error
    assert lookups == ["w", "w"]


def test_a_park_policy_lets_an_operator_raise_the_limit(sqlite_db, inline, llm):
    llm.set_script(
        {
            "turns": [
                {
                    "tool_calls": [{"name": "lookup", "arguments": {"item": "w"}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 50},
                },
                {
                    "tool_calls": [{"name": "lookup", "arguments": {"item": "w"}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 50},
                },
                {"content": "7", "usage": {"prompt_tokens": 100, "completion_tokens": 50}},
            ]
        }
    )
    budget = Budget(max_tokens=400, on_exceeded="park")
    agent = Agent(unique("budget"), "Count.", [lookup], budget=budget)
    rid = start_run(agent.name, {"message": "Count w."})

    run = settle(inline, rid)

    assert run.status == "waiting" and llm.stats(rid)["calls"] == 2
    assert run.wait is not None and run.wait.approvers == ["operator"]
    assert "max_tokens=400" in run.wait.data["budget_exceeded"]

    approve(rid, "operator", {"max_tokens": 1000})
    run = settle(inline, rid)

    assert run.status == "succeeded", run.error
    assert run.state["_budget"] == {"max_tokens": 1000}
    assert llm.stats(rid)["calls"] == 3


def test_a_park_policy_rejected_fails_the_run(sqlite_db, inline, llm):
    looping_script(llm)
    budget = Budget(max_tool_calls=1, on_exceeded="park")
    agent = Agent(unique("budget"), "Count.", [lookup], budget=budget)
    rid = start_run(agent.name, {"message": "Count w."})
    assert settle(inline, rid).status == "waiting"

    reject(rid, "operator", reason="enough")
    run = settle(inline, rid)

    assert run.status == "failed" and "budget" in run.error and "enough" in run.error
    assert lookups == ["w"]


def test_a_park_policy_approved_without_data_allows_one_call(sqlite_db, inline, llm):
    looping_script(llm)
    budget = Budget(max_tool_calls=1, on_exceeded="park")
    agent = Agent(unique("budget"), "Count.", [lookup], budget=budget, max_turns=3)
    rid = start_run(agent.name, {"message": "Count w."})
    assert settle(inline, rid).status == "waiting"

    approve(rid, "operator")
    run = settle(inline, rid)

    assert run.status == "waiting"  # the next call is stopped again
    assert lookups == ["w", "w"]
