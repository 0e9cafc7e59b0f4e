"""Tool calls whose outcome is unknown (the worker died after the call started, before its
result was recorded): idempotent tools run again with the same key, others park for an
operator and are never repeated blindly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline import Agent, Approval, RetryPolicy, approve, reject, start_run, tool
from pipeline.testing import ScriptedLLMServer
from tests.support.agents import ledger, scripted_llm, settle, tool_messages, unique

reservations: list[str] = []
payments: list[str] = []
flaky: list[int] = []


@tool(effect="idempotent")
def reserve_stock(item: str, quantity: int, idempotency_key: str) -> dict[str, Any]:
    """Reserve stock; the warehouse deduplicates by key.

    Args:
        item: the SKU.
        quantity: how many.
    """
    reservations.append(idempotency_key)
    return {"reserved": quantity, "item": item}


@tool(effect="write")
def pay_invoice(invoice: str, idempotency_key: str) -> dict[str, Any]:
    """Pay an invoice (the bank does not deduplicate).

    Args:
        invoice: the invoice number.
    """
    payments.append(idempotency_key)
    return {"paid": invoice}


@tool(effect="write")
def flaky_write(note: str) -> str:
    """Write a note; fails the first time, having done nothing.

    Args:
        note: the text.
    """
    flaky.append(len(flaky))
    if len(flaky) == 1:
        raise ConnectionRefusedError("notes service refused the connection")
    return "written"


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLMServer]:
    for log in (reservations, payments, flaky):
        log.clear()
    with scripted_llm(monkeypatch) as server:
        yield server


def agent_with(*tools: Any) -> Agent:
    fast = RetryPolicy(max_attempts=3, initial_delay=0.01, backoff=1.0)
    return Agent(unique("ops"), "Do the operations asked.", list(tools), tool_retry=fast)


def script(llm: ScriptedLLMServer, name: str, arguments: dict[str, Any]) -> None:
    llm.set_script(
        {"turns": [{"tool_calls": [{"name": name, "arguments": arguments}]}, {"content": "done"}]}
    )


# The tool ran, then the attempt died before its result was journaled.
DIED_AFTER_CALL = "after_effect_call_before_record@act=raise"


def test_an_idempotent_tool_runs_again_with_the_same_key(any_db, inline, llm, arm):
    arm(DIED_AFTER_CALL)
    script(llm, "reserve_stock", {"item": "widget", "quantity": 5})
    agent = agent_with(reserve_stock)
    rid = start_run(agent.name, {"message": "Reserve 5 widgets."})

    run = settle(inline, rid)

    assert run.status == "succeeded", run.error
    assert len(reservations) == 2 and reservations[0] == reservations[1]  # same key: deduped
    [row] = [r for r in ledger(rid) if r.name == "tool:call_0_0"]
    assert (row.status, row.calls, row.idempotency_key) == ("done", 2, reservations[0])
    assert json.loads(tool_messages(rid)[0]) == {"reserved": 5, "item": "widget"}


def test_a_non_idempotent_tool_parks_for_an_operator_and_is_not_rerun(any_db, inline, llm, arm):
    arm(DIED_AFTER_CALL)
    script(llm, "pay_invoice", {"invoice": "INV-7"})
    agent = agent_with(pay_invoice)
    rid = start_run(agent.name, {"message": "Pay INV-7."})

    run = settle(inline, rid)

    assert run.status == "waiting"
    assert len(payments) == 1  # ran once; not repeated
    assert run.wait is not None and run.wait.approvers == ["operator"]
    assert run.wait.data["unknown_outcome"] is True
    assert run.wait.data["arguments"] == {"invoice": "INV-7"}
    assert run.wait.data["idempotency_key"] == payments[0]
    assert "outcome of a call to tool 'pay_invoice' is unknown" in run.wait.prompt

    approve(rid, "operator", {"resolution": "skip", "result": {"paid": "INV-7", "bank": "ok"}})
    run = settle(inline, rid)

    assert run.status == "succeeded", run.error
    assert len(payments) == 1
    assert json.loads(tool_messages(rid)[0]) == {"paid": "INV-7", "bank": "ok"}


def test_an_operator_may_retry_an_unknown_outcome_with_the_same_key(sqlite_db, inline, llm, arm):
    arm(DIED_AFTER_CALL)
    script(llm, "pay_invoice", {"invoice": "INV-8"})
    agent = agent_with(pay_invoice)
    rid = start_run(agent.name, {"message": "Pay INV-8."})
    assert settle(inline, rid).status == "waiting"

    approve(rid, "operator", {"resolution": "retry"})
    run = settle(inline, rid)

    assert run.status == "succeeded", run.error
    assert len(payments) == 2 and payments[0] == payments[1]
    # The journal records the key the call carried (the first call's), not one of its own.
    keys = {r.idempotency_key for r in ledger(rid) if r.name == "tool:call_0_0"}
    assert keys == {payments[0]}


def test_an_operator_rejecting_an_unknown_outcome_fails_the_run(sqlite_db, inline, llm, arm):
    arm(DIED_AFTER_CALL)
    script(llm, "pay_invoice", {"invoice": "INV-9"})
    agent = agent_with(pay_invoice)
    rid = start_run(agent.name, {"message": "Pay INV-9."})
    assert settle(inline, rid).status == "waiting"

    reject(rid, "operator", reason="the bank shows a duplicate; reconcile by hand")
    run = settle(inline, rid)

    assert run.status == "failed"
    assert "reconcile by hand" in run.error
    assert len(payments) == 1


def test_a_death_after_the_intent_parks_too_since_the_call_may_have_started(
    sqlite_db, inline, llm, arm
):
    arm("after_effect_intent@act=raise")
    script(llm, "pay_invoice", {"invoice": "INV-10"})
    agent = agent_with(pay_invoice)
    rid = start_run(agent.name, {"message": "Pay INV-10."})

    run = settle(inline, rid)

    assert run.status == "waiting" and run.wait.data["unknown_outcome"] is True
    assert payments == []


def test_a_tool_that_raised_is_a_known_failure_and_is_retried(sqlite_db, inline, llm):
    script(llm, "flaky_write", {"note": "hello"})
    agent = agent_with(flaky_write)
    rid = start_run(agent.name, {"message": "Write hello."})

    run = settle(inline, rid)

    assert run.status == "succeeded", run.error
    assert flaky == [0, 1]
    names = {r.name: r.status for r in ledger(rid)}
    assert names["tool:call_0_0"] == "done"
    assert names["tool:call_0_0!raised1"] == "done"  # the marker that the first start raised


def test_an_approved_call_with_an_unknown_outcome_is_not_repeated(sqlite_db, inline, llm, arm):
    arm(DIED_AFTER_CALL)

    @tool(approval=Approval(approvers=["finance"]))
    def wire_money(amount: int) -> str:
        """Wire money.

        Args:
            amount: USD.
        """
        payments.append(str(amount))
        return "sent"

    script(llm, "wire_money", {"amount": 500})
    agent = agent_with(wire_money)
    rid = start_run(agent.name, {"message": "Wire 500."})
    assert settle(inline, rid).wait.approvers == ["finance"]

    approve(rid, "finance")
    run = settle(inline, rid)

    assert run.status == "waiting" and run.wait.approvers == ["operator"]
    assert run.wait.data["unknown_outcome"] is True
    assert payments == ["500"]
