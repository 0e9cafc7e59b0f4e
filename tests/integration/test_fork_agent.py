"""Forking an agent run (in-process engine, scripted LLM server counting calls per run,
SQLite and PostgreSQL): the conversation up to the fork point is reused, so the LLM is not
asked again for earlier turns; the fork pays only its own calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline import Agent, InvalidInput, fork_run, get_run, run_history, run_steps, start_run
from pipeline import tool as as_tool
from pipeline.testing import ScriptedLLMServer
from tests.support.agents import messages, scripted_llm, settle, unique

quoted: list[str] = []


@as_tool
def get_quote(vendor: str) -> dict[str, Any]:
    """The price a vendor quotes for 5 laptops.

    Args:
        vendor: the vendor's name.
    """
    quoted.append(vendor)
    return {"vendor": vendor, "price": 5000 if vendor == "acme" else 4200}


QUOTE = {
    "tool_calls": [{"name": "get_quote", "arguments": {"vendor": "acme"}}],
    "usage": {"prompt_tokens": 1000, "completion_tokens": 100},
}
ANSWER = {"content": "acme: 5000", "usage": {"prompt_tokens": 1500, "completion_tokens": 50}}
OTHER_ANSWER = {
    "content": "acme: 5000, but ask globex",
    "usage": {"prompt_tokens": 1500, "completion_tokens": 70},
}


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLMServer]:
    quoted.clear()
    with scripted_llm(monkeypatch) as server:
        yield server


def test_a_forked_agent_run_repays_nothing_before_the_fork_point(any_db, inline, llm):
    llm.set_script({"turns": [QUOTE, ANSWER]})
    agent = Agent(unique("buyer"), "Buy laptops.", [get_quote])
    rid = start_run(agent.name, {"message": "Quote 5 laptops"})
    run = settle(inline, rid)
    assert run.status == "succeeded", run.error
    assert [s.step for s in run_steps(rid)] == ["reason", "act", "reason", "verify"]
    assert llm.stats(rid)["calls"] == 2
    assert quoted == ["acme"]

    # Fork at the second reason step (seq 2): the model is asked again, the rest is reused.
    llm.set_script({"turns": [QUOTE, OTHER_ANSWER]})
    fid = fork_run(rid, 2, "olga")
    fork = settle(inline, fid)

    assert fork.status == "succeeded", fork.error
    assert fork.result == {"answer": "acme: 5000, but ask globex", "turns": 2}
    billed = llm.stats(fid)
    assert billed["calls"] == 1, "the fork paid for turns before the fork point"
    assert billed["by_turn"] == {"1": {"calls": 1, "failed_calls": 0}}
    assert quoted == ["acme"], "the tool ran again although its step was before the fork"
    assert fork.tokens == billed["total_tokens"] == 1570
    assert get_run(rid).tokens == 1000 + 100 + 1500 + 50  # the original's own, unchanged
    assert [m["role"] for m in messages(fid)] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert messages(fid)[:4] == messages(rid)[:4]
    assert [s.seq for s in run_steps(fid)] == [2, 3]
    first = run_history(fid)[0]
    assert (first.kind, first.data["from_run"], first.data["from_seq"]) == ("run.forked", rid, 2)
    assert first.data["messages"] == 4
    assert run_history(rid)[-1].kind == "run.forked_to"


def test_forking_an_agent_at_its_act_step_reruns_the_tool_but_no_earlier_llm_call(
    any_db, inline, llm
):
    llm.set_script({"turns": [QUOTE, ANSWER]})
    agent = Agent(unique("buyer"), "Buy laptops.", [get_quote])
    rid = start_run(agent.name, {"message": "Quote 5 laptops"})
    assert settle(inline, rid).status == "succeeded"

    fid = fork_run(rid, 1, "olga")
    assert settle(inline, fid).status == "succeeded"
    assert quoted == ["acme", "acme"]  # a fresh tool call in the fork, under its own key
    assert llm.stats(fid)["calls"] == 1  # turn 1 only
    assert get_run(fid).state["_agent"]["turns"] == 2


def test_an_agent_fork_refuses_to_patch_the_agents_bookkeeping(any_db, inline, llm):
    llm.set_script({"turns": [ANSWER]})
    agent = Agent(unique("buyer"), "Buy laptops.", [get_quote])
    rid = start_run(agent.name, {"message": "Quote 5 laptops"})
    assert settle(inline, rid).status == "succeeded"
    with pytest.raises(InvalidInput, match="_agent"):
        fork_run(rid, 1, "olga", state_patch={"_agent": {"turns": 0}})
    with pytest.raises(InvalidInput, match=r'state\["message"\] from a string to an object'):
        fork_run(rid, 1, "olga", state_patch={"message": {"text": "Quote 6"}})
