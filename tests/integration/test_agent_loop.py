"""The agent loop end to end (in-process engine, scripted LLM server, SQLite and PostgreSQL):
token accounting, journaled LLM responses reused, LLM errors and the step's retry policy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from models import Message
from pipeline import (
    Agent,
    RetryPolicy,
    get_run,
    run_history,
    run_steps,
    start_run,
    tool,
    verify_audit,
)
from pipeline.store import get_db, journal
from pipeline.testing import ScriptedLLMServer
from tests.support.agents import (
    MODEL,
    ledger,
    messages,
    scripted_llm,
    settle,
    unique,
    wake_at,
)

FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, backoff=1.0, max_delay=60)
looked_up: list[str] = []


@tool
def check_inventory(item: str) -> dict[str, Any]:
    """Look up how many of an item are in stock.

    Args:
        item: the item's SKU.
    """
    looked_up.append(item)
    return {"item": item, "in_stock": 42}


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLMServer]:
    looked_up.clear()
    with scripted_llm(monkeypatch) as server:
        yield server


def stock_agent(**kwargs: Any) -> Agent:
    return Agent(unique("stock"), "Answer stock questions.", [check_inventory], **kwargs)


LOOKUP = {"tool_calls": [{"name": "check_inventory", "arguments": {"item": "widget"}}]}


def test_tools_run_and_every_llm_call_is_journaled_with_tokens_and_cost(any_db, inline, llm):
    llm.set_script(
        {
            "turns": [
                {**LOOKUP, "usage": {"prompt_tokens": 1000, "completion_tokens": 200}},
                {
                    "content": "widget: 42 in stock",
                    "usage": {"prompt_tokens": 1500, "completion_tokens": 300},
                },
            ]
        }
    )
    agent = stock_agent()
    rid = start_run(agent.name, {"message": "Is widget in stock?"})

    run = settle(inline, rid)

    assert run.status == "succeeded", run.error
    assert run.result == {"answer": "widget: 42 in stock", "turns": 2}
    assert looked_up == ["widget"]
    assert [s.step for s in run_steps(rid)] == ["reason", "act", "reason", "verify"]
    billed = llm.stats(rid)
    assert billed["calls"] == 2 and billed["failed_calls"] == 0
    assert run.tokens == billed["total_tokens"] == 3000
    assert run.cost_usd == pytest.approx((2500 * 0.15 + 500 * 0.60) / 1_000_000)
    rows = {r.name: r for r in ledger(rid)}
    assert set(rows) == {"llm:0", "llm:1", "tool:call_0_0"}
    first = rows["llm:0"]
    assert (first.kind, first.status, first.calls, first.tokens, first.model) == (
        "llm",
        "done",
        1,
        1200,
        MODEL,
    )
    assert first.cost_usd == pytest.approx((1000 * 0.15 + 200 * 0.60) / 1_000_000)
    assert first.result["usage"]["prompt_tokens"] == 1000
    assert rows["tool:call_0_0"].kind == "tool"
    assert rows["tool:call_0_0"].result == {"item": "widget", "in_stock": 42}
    assert [m["role"] for m in messages(rid)] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]


def test_a_later_step_loads_only_the_messages_committed_since(any_db, inline, llm, monkeypatch):
    """The conversation kept from a run's earlier step is extended, not loaded again: the
    time an agent's turn spends loading it does not grow with the conversation."""
    fetched: list[int] = []
    fetch = journal._fetch_messages

    def counted(db: Any, run_id: str, *, after: int) -> list[dict[str, Any]]:
        fetched.append(after)
        return fetch(db, run_id, after=after)

    monkeypatch.setattr(journal, "_fetch_messages", counted)
    llm.set_script({"turns": [LOOKUP, {"content": "widget: 42 in stock"}]})
    rid = start_run(stock_agent().name, {"message": "Is widget in stock?"})

    assert settle(inline, rid).status == "succeeded"
    # act, reason and verify each load it; the first from the start, the others only what
    # the step before them committed (the system and user messages, then one at a time).
    assert fetched[0] == 0 and fetched[1:] == sorted(fetched[1:]) and 0 not in fetched[1:]
    kept = messages(rid)
    journal._conversations.clear()
    assert messages(rid) == kept
    assert [m["role"] for m in kept] == ["system", "user", "assistant", "tool", "assistant"]


def test_a_journaled_llm_response_is_reused_when_the_step_runs_again(any_db, inline, llm, arm):
    # The response is journaled, then the attempt dies before its checkpoint is committed.
    arm("after_llm_response_before_persist@reason=raise")
    llm.set_script({"turns": [LOOKUP, {"content": "in stock"}]})
    agent = stock_agent()
    rid = start_run(agent.name, {"message": "Is widget in stock?"})

    inline.drain()
    assert get_run(rid).status == "sleeping"  # the failed attempt waits for its retry
    run = settle(inline, rid)

    assert run.status == "succeeded", run.error
    assert llm.stats(rid)["by_turn"]["0"] == {"calls": 1, "failed_calls": 0}  # paid once
    assert llm.stats(rid)["calls"] == 2
    attempts = [(s.step, s.attempt, s.status) for s in run_steps(rid)][:2]
    assert attempts == [("reason", 1, "failed"), ("reason", 2, "succeeded")]
    assert {r.name: r.calls for r in ledger(rid)}["llm:0"] == 1  # no second intent either


def test_each_step_writes_only_the_messages_it_adds(sqlite_db, inline, llm):
    llm.set_script({"turns": [LOOKUP] * 8 + [{"content": "done"}]})
    agent = stock_agent()
    rid = start_run(agent.name, {"message": "Check widget eight times."})

    assert settle(inline, rid).status == "succeeded"

    msgs = Message.__table__
    with get_db().engine.connect() as conn:
        per_step = dict(
            conn.execute(
                select(msgs.c.seq, func.count()).where(msgs.c.run_id == rid).group_by(msgs.c.seq)
            ).all()
        )
    # The first reason writes system + user + reply; every later step one message, however
    # long the conversation has grown.
    assert per_step[0] == 3
    assert sorted(set(per_step.values()) - {per_step[0]}) == [1]
    assert sum(per_step.values()) == len(messages(rid)) == 3 + 8 * 2


def test_a_rule_verifier_sends_feedback_back_to_the_model(sqlite_db, inline, llm):
    llm.set_script({"turns": [{"content": "42"}, {"content": "The answer is 42."}]})
    agent = stock_agent(
        verify=lambda ctx, answer: answer.startswith("The answer") or "Write a full sentence."
    )
    rid = start_run(agent.name, {"message": "What is six times seven?"})

    run = settle(inline, rid)

    assert run.result == {"answer": "The answer is 42.", "turns": 2}
    feedback = [m["content"] for m in messages(rid) if m["role"] == "user"][-1]
    assert "Write a full sentence." in feedback


def test_a_verifier_returning_false_fails_the_run(sqlite_db, inline, llm):
    llm.set_script({"turns": [{"content": "no idea"}]})
    agent = stock_agent(verify=lambda ctx, answer: False)
    rid = start_run(agent.name, {"message": "?"})

    run = settle(inline, rid)

    assert run.status == "failed" and "did not pass verification" in run.error


@pytest.mark.parametrize(
    ("verdict", "status", "error"),
    [
        ("pass", "succeeded", None),
        ("fail", "failed", "the judge rejected the answer: made up"),
        ("revise", "failed", "max_turns=3"),
    ],
)
def test_an_llm_judge_accepts_revises_or_fails(sqlite_db, inline, llm, verdict, status, error):
    judge_reply = f'{{"verdict": "{verdict}", "feedback": "made up"}}'
    llm.set_script(
        {
            "routes": [{"match": "[ravel-judge]", "turns": [{"content": judge_reply}]}],
            "turns": [{"content": "42 widgets"}],
        }
    )
    agent = stock_agent(judge=True, max_turns=3)
    rid = start_run(agent.name, {"message": "How many widgets?"})

    run = settle(inline, rid)

    assert run.status == status
    if error:
        assert error in run.error
    judged = [r for r in ledger(rid) if r.name.startswith("llm:judge:")]
    assert judged and all(r.kind == "llm" and r.tokens > 0 for r in judged)
    assert run.tokens == llm.stats()["total_tokens"]


def test_max_turns_bounds_the_loop(sqlite_db, inline, llm):
    llm.set_script({"turns": [LOOKUP]})  # the model never stops calling tools
    agent = stock_agent(max_turns=3)
    rid = start_run(agent.name, {"message": "Loop forever."})

    run = settle(inline, rid)

    assert run.status == "failed"
    assert "max_turns=3" in run.error
    assert llm.stats(rid)["calls"] == 3


def test_a_run_without_a_message_fails_clearly(sqlite_db, inline, llm):
    agent = stock_agent()
    rid = start_run(agent.name, {"text": "wrong key"})

    run = settle(inline, rid)

    assert run.status == "failed" and '"message"' in run.error
    assert llm.stats()["calls"] == 0


# -- LLM errors: the step's retry policy owns retries --------------------------------------


def test_429_sleeps_durably_for_at_least_retry_after(any_db, inline, llm):
    llm.set_script(
        {
            "turns": [
                {"content": "hi", "fault": {"status": 429, "retry_after": 30}, "fault_times": 1},
            ]
        }
    )
    agent = stock_agent()
    rid = start_run(agent.name, {"message": "hello"})

    inline.drain()

    run = get_run(rid)
    assert run.status == "sleeping"
    assert (wake_at(rid) - run.updated_at).total_seconds() >= 30
    [scheduled] = [e for e in run_history(rid) if e.kind == "step.retry_scheduled"]
    assert scheduled.data["delay"] >= 30
    [failed] = run_steps(rid)
    assert failed.status == "failed" and "429" in failed.error and "30" in failed.error
    assert llm.stats(rid)["failed_calls"] == 1  # one request: the SDK did not retry on its own
    assert inline.queue == type(inline.queue)()  # the sleeping run holds no wake-up

    run = settle(inline, rid)

    assert run.status == "succeeded"
    assert llm.stats(rid)["by_turn"]["0"] == {"calls": 1, "failed_calls": 1}


def test_500s_are_retried_by_the_step_one_request_per_attempt(any_db, inline, llm):
    llm.set_script(
        {
            "turns": [
                {"content": "hi", "fault": {"status": 500}, "fault_times": 2},
            ]
        }
    )
    agent = stock_agent(retry=FAST)
    rid = start_run(agent.name, {"message": "hello"})

    run = settle(inline, rid)

    assert run.status == "succeeded"
    assert [(s.attempt, s.status) for s in run_steps(rid) if s.step == "reason"] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]
    assert llm.stats(rid)["failed_calls"] == 2 and llm.stats(rid)["calls"] == 1


def test_500s_past_max_attempts_fail_the_run(sqlite_db, inline, llm):
    llm.set_script({"turns": [{"content": "hi", "fault": {"status": 503}}]})
    agent = stock_agent(retry=FAST)
    rid = start_run(agent.name, {"message": "hello"})

    run = settle(inline, rid)

    assert run.status == "failed" and "503" in run.error
    assert llm.stats(rid)["failed_calls"] == FAST.max_attempts  # exactly one per attempt


def test_400_fails_the_run_with_the_api_message(any_db, inline, llm):
    llm.set_script(
        {
            "turns": [
                {
                    "content": "hi",
                    "fault": {
                        "status": 400,
                        "message": "Invalid value for 'temperature': must be <= 2.",
                    },
                }
            ]
        }
    )
    agent = stock_agent()
    rid = start_run(agent.name, {"message": "hello"})

    inline.drain()

    run = get_run(rid)
    assert run.status == "failed"
    assert "Invalid value for 'temperature': must be <= 2." in run.error
    assert "LLMError" in run.error and "400" in run.error
    assert len(run_steps(rid)) == 1
    assert llm.stats(rid)["failed_calls"] == 1


def test_a_timed_out_request_is_retried(sqlite_db, inline, llm, monkeypatch):
    from pipeline.settings import reload_settings

    monkeypatch.setenv("RAVEL_STEP_TIME_LIMIT", "2")  # requests time out after 1.6 s
    reload_settings()
    llm.set_script({"turns": [{"content": "hi", "fault": {"hang": 3}, "fault_times": 1}]})
    agent = stock_agent(retry=FAST)
    rid = start_run(agent.name, {"message": "hello"})

    run = settle(inline, rid)

    assert run.status == "succeeded"
    assert "timed out" in run_steps(rid)[0].error
    # The abandoned request is still billed once the server answers it: the documented "at
    # most one extra call per timeout (or crash) inside an in-flight call".
    deadline = time.monotonic() + 5
    while llm.stats(rid)["calls"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert llm.stats(rid)["calls"] == 2


def test_the_audit_log_shows_what_the_model_decided_and_why(any_db, inline, llm):
    llm.set_script(
        {
            "turns": [
                {**LOOKUP, "content": "Checking stock before answering."},
                {"content": "widget: 42 in stock"},
            ]
        }
    )
    agent = stock_agent()
    rid = start_run(agent.name, {"message": "Is widget in stock?"})
    assert settle(inline, rid).status == "succeeded"

    events = [
        (e.kind, e.step, e.data)
        for e in run_history(rid)
        if e.kind in ("llm.replied", "tool.called")
    ]
    assert [(k, s) for k, s, _ in events] == [
        ("llm.replied", "reason"),
        ("tool.called", "act"),
        ("llm.replied", "reason"),
    ]
    first, tool_call, last = (d for _, _, d in events)
    assert first["content"] == "Checking stock before answering."
    assert first["tool_calls"] == ["check_inventory"] and first["tokens"] > 0
    assert tool_call["tool"] == "check_inventory"
    assert '"widget"' in tool_call["arguments"] and "42" in tool_call["result"]
    assert last["tool_calls"] == [] and last["finish_reason"] == "stop"
    assert verify_audit(rid).ok
