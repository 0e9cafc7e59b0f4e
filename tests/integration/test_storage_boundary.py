"""The storage boundary on SQLite and PostgreSQL: NUL characters and lone surrogates round-trip
exactly through every JSON column (PostgreSQL's JSONB refuses them raw), sizes are capped with
a clear error that changes nothing, secret-named keys are redacted, deep JSON is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from models import Effect, Run
from pipeline import (
    Agent,
    Done,
    InvalidInput,
    Next,
    RetryPolicy,
    WaitForApproval,
    WaitForEvent,
    Workflow,
    approve,
    get_run,
    run_history,
    run_steps,
    send_event,
    start_run,
    tool,
    verify_audit,
)
from pipeline.cli import cli
from pipeline.errors import ValueTooLarge
from pipeline.redact import MASK
from pipeline.settings import reload_settings
from pipeline.store import get_db
from pipeline.testing import ScriptedLLMServer
from tests.integration._engine_support import reap_until, status, unique
from tests.support.agents import scripted_llm, settle, tool_messages
from tests.support.agents import unique as agent_name

FAST = RetryPolicy(max_attempts=3, initial_delay=0.05, backoff=1.0)
# NUL in keys and values, a lone surrogate, and the storage escape character itself (bare,
# and followed by what looks like an escape code): each must read back exactly as written.
AWKWARD: dict[str, Any] = {
    "nul\x00key": "nul\x00value",
    "list": ["\x00", "\ud800", "x\udfffy", {"\x00": ["\x00\x00"]}],
    "escape": "\ue000",
    "lookalike": "\ue0000041",
    "plain": "ordinary text, é, 😀",
    "n": 1,
}


def _journal(run_id: str) -> dict[str, tuple[str, int, Any]]:
    t = Effect.__table__
    with get_db().engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.run_id == run_id))
        return {r.name: (r.status, r.calls, r.result) for r in rows}


def _run_to_end(inline: Any, run_id: str) -> None:
    inline.drain()
    while not get_run(run_id).status.is_final:
        reap_until(lambda: status(run_id) == "pending")
        inline.drain()


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set RAVEL_MAX_* limits for one test: ``limits(RAVEL_MAX_VALUE_BYTES=1000)``."""

    def set_limits(**values: int) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, str(value))
        reload_settings()

    yield set_limits
    monkeypatch.undo()
    reload_settings()


# -- NUL and lone surrogates ---------------------------------------------------------------


def test_effect_result_with_nul_is_journaled_once_and_read_back_exactly(any_db, inline):
    calls: list[int] = []
    seen: list[tuple[int, Any]] = []
    name = unique("nul_effect")
    flow = Workflow(name)

    def fetch() -> dict[str, Any]:
        calls.append(1)
        return AWKWARD

    @flow.step(start=True, retry=FAST)
    def call(ctx):
        value = ctx.effect("fetch", fetch)
        seen.append((ctx.attempt, value))
        if ctx.attempt == 1:
            raise RuntimeError("crashed after the effect")
        return Done(value)

    rid = start_run(name, {})
    _run_to_end(inline, rid)

    run = get_run(rid)
    assert run.status == "succeeded", run.error
    assert calls == [1]  # journaled on the first attempt, so the retry did not call again
    assert seen == [(1, AWKWARD), (2, AWKWARD)]
    assert _journal(rid) == {"fetch": ("done", 1, AWKWARD)}
    assert run.result == AWKWARD


def test_nul_in_state_messages_audit_and_done_result_round_trips(any_db, inline):
    seen: dict[str, Any] = {}
    name = unique("nul_state")
    flow = Workflow(name)

    @flow.step(start=True)
    def first(ctx):
        ctx.state["awkward"] = AWKWARD
        ctx.add_message({"role": "user", "content": "hi\x00there\ud800"})
        ctx.audit("custom", {"note\x00": "value\x00\udc00"})
        return Next("second")

    @flow.step
    def second(ctx):
        seen["state"] = ctx.state["awkward"]
        seen["messages"] = ctx.messages
        return Done({"echo": ctx.state["awkward"], "input": ctx.state["in"]})

    rid = start_run(name, {"in": "a\x00b\ud800"})
    _run_to_end(inline, rid)

    run = get_run(rid)
    assert run.status == "succeeded", run.error
    assert seen["state"] == AWKWARD
    assert seen["messages"] == [{"role": "user", "content": "hi\x00there\ud800"}]
    assert run.result == {"echo": AWKWARD, "input": "a\x00b\ud800"}
    assert run.input == {"in": "a\x00b\ud800"}
    assert run.state["awkward"] == AWKWARD
    custom = [e for e in run_history(rid) if e.kind == "custom"]
    assert [e.data for e in custom] == [{"note\x00": "value\x00\udc00"}]
    check = verify_audit(rid)
    assert check.ok and check.events == len(run_history(rid)), check
    verified = CliRunner().invoke(cli, ["audit", "verify", rid])
    assert verified.exit_code == 0, verified.output
    assert f"verified: {check.events} events" in verified.stdout


def test_nul_in_wait_data_prompt_decision_and_event_payload(any_db, inline):
    seen: dict[str, Any] = {}
    name = unique("nul_wait")
    flow = Workflow(name)

    @flow.step(start=True)
    def ask(ctx):
        return WaitForApproval(
            prompt="ship it?\x00\nreally",
            approvers=["ann"],
            data={"order\x00": "\ud800"},
            then="shipped",
        )

    @flow.step
    def shipped(ctx):
        seen["approval"] = ctx.wait_result.data
        return WaitForEvent("delivered", then="done")

    @flow.step
    def done(ctx):
        seen["event"] = ctx.wait_result.data
        return Done()

    rid = start_run(name, {})
    inline.drain()
    wait = get_run(rid).wait
    assert wait is not None and wait.data == {"order\x00": "\ud800"}
    # A prompt is TEXT for humans: NUL is shown as the two characters \0, newlines kept.
    assert wait.prompt == "ship it?\\0\nreally"

    approve(rid, "ann", {"note": "ok\x00", "\x00": "\udbff"})
    inline.drain()
    assert status(rid) == "waiting"
    assert send_event(rid, "delivered", {"by\x00": ["\x00", "\ue000"]}) is True
    inline.drain()

    assert status(rid) == "succeeded"
    assert seen == {
        "approval": {"note": "ok\x00", "\x00": "\udbff"},
        "event": {"by\x00": ["\x00", "\ue000"]},
    }
    check = verify_audit(rid)
    assert check.ok, check


def test_nul_in_error_text_is_stored_visibly(any_db, inline):
    name = unique("nul_error")
    flow = Workflow(name)

    @flow.step(start=True, retry=RetryPolicy(max_attempts=1))
    def boom(ctx):
        raise ValueError("bad byte \x00 and \ud800 here")

    rid = start_run(name, {})
    inline.drain()

    run = get_run(rid)
    assert run.status == "failed"
    assert "bad byte \\0 and \\ud800 here" in run.error
    assert "bad byte \\0" in run_steps(rid)[0].error
    assert verify_audit(rid).ok


# -- size limits ---------------------------------------------------------------------------


def _effect_row_done(run_id: str) -> int:
    t = Effect.__table__
    with get_db().engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(t.c.run_id == run_id, t.c.status == "done")
        ).scalar_one()


def test_an_oversize_effect_result_fails_the_attempt_and_records_nothing(any_db, inline, limits):
    limits(RAVEL_MAX_VALUE_BYTES=1000)
    calls: list[int] = []
    name = unique("big_effect")
    flow = Workflow(name)

    @flow.step(start=True, retry=FAST)
    def call(ctx):
        ctx.state["touched"] = True
        ctx.effect("big", lambda: calls.append(1) or {"blob": "x" * 2000})
        return Done("unreachable")

    rid = start_run(name, {"keep": 1})
    inline.drain()

    run = get_run(rid)
    assert run.status == "failed"  # InvalidInput: retrying would call (and pay) again
    assert calls == [1]
    assert "ValueTooLarge" in run.error
    assert "the result of effect 'big'" in run.error
    assert "over the 1000-byte limit" in run.error and "RAVEL_MAX_VALUE_BYTES" in run.error
    assert run.state == {"keep": 1}  # the attempt's state change was not committed
    assert run.result is None
    assert _effect_row_done(rid) == 0 and _journal(rid)["big"][0] == "started"


def test_an_oversize_state_fails_the_step_and_keeps_the_old_state(any_db, inline, limits):
    limits(RAVEL_MAX_STATE_BYTES=1000)
    name = unique("big_state")
    flow = Workflow(name)

    @flow.step(start=True, retry=FAST)
    def grow(ctx):
        ctx.state["blob"] = "x" * 2000
        return Next("never")

    @flow.step
    def never(ctx):
        return Done()

    rid = start_run(name, {"keep": 1})
    inline.drain()

    run = get_run(rid)
    assert run.status == "failed" and run.step == "grow"
    assert "ctx.state is" in run.error and "over the 1000-byte limit" in run.error
    assert "RAVEL_MAX_STATE_BYTES" in run.error
    assert run.state == {"keep": 1}


def test_oversize_inputs_are_refused_before_anything_changes(any_db, inline, limits):
    limits(RAVEL_MAX_INPUT_BYTES=100)
    name = unique("big_input")
    flow = Workflow(name)

    @flow.step(start=True)
    def wait(ctx):
        return WaitForApproval(prompt="ok?", approvers=["ann"], then="end")

    @flow.step
    def end(ctx):
        return Done(ctx.wait_result.data)

    with pytest.raises(
        ValueTooLarge,
        match=r"the run input is \d+ bytes of JSON, over the "
        r"100-byte limit.*RAVEL_MAX_INPUT_BYTES",
    ):
        start_run(name, {"blob": "x" * 200})
    with get_db().engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Run.__table__)).scalar_one() == 0
    assert not inline.queue

    rid = start_run(name, {})
    inline.drain()
    events = len(run_history(rid))
    with pytest.raises(ValueTooLarge, match=r"the event payload .*RAVEL_MAX_INPUT_BYTES"):
        send_event(rid, "ping", "x" * 200)
    with pytest.raises(ValueTooLarge, match=r"the decision data .*RAVEL_MAX_INPUT_BYTES"):
        approve(rid, "ann", {"blob": "x" * 200})
    assert status(rid) == "waiting" and len(run_history(rid)) == events
    approve(rid, "ann", {"small": 1})
    inline.drain()
    assert get_run(rid).result == {"small": 1}


def test_a_done_result_over_the_value_limit_fails_the_run_clearly(any_db, inline, limits):
    limits(RAVEL_MAX_VALUE_BYTES=1000)
    name = unique("big_done")
    flow = Workflow(name)

    @flow.step(start=True)
    def finish(ctx):
        return Done({"blob": "x" * 2000})

    rid = start_run(name, {})
    inline.drain()

    run = get_run(rid)
    assert run.status == "failed" and run.result is None
    assert "the Done result is" in run.error and "RAVEL_MAX_VALUE_BYTES" in run.error


# -- secrets and depth ---------------------------------------------------------------------


def test_secret_named_keys_in_effect_results_and_state_are_stored_redacted(any_db, inline):
    seen: list[Any] = []
    name = unique("secrets")
    flow = Workflow(name)

    def create_account() -> dict[str, Any]:
        return {"user": "ann", "api_key": "plain-key-1", "nested": [{"password": "hunter2"}]}

    @flow.step(start=True)
    def make(ctx):
        account = ctx.effect("create", create_account)
        seen.append(account)
        ctx.state["session"] = {"access_token": "tok-123", "user": "ann"}
        return Next("use")

    @flow.step
    def use(ctx):
        seen.append(ctx.state["session"])
        return Done()

    rid = start_run(name, {})
    _run_to_end(inline, rid)

    redacted = {"user": "ann", "api_key": MASK, "nested": [{"password": MASK}]}
    # The step sees the stored (redacted) value on its first attempt, as it would on a replay.
    assert seen == [redacted, {"access_token": MASK, "user": "ann"}]
    assert _journal(rid)["create"] == ("done", 1, redacted)
    assert get_run(rid).state["session"] == {"access_token": MASK, "user": "ann"}
    with get_db().engine.connect() as conn:
        stored = str(conn.execute(select(Run.__table__.c.state)).all())
        stored += str(conn.execute(select(Effect.__table__.c.result)).all())
    for secret in ("plain-key-1", "hunter2", "tok-123"):
        assert secret not in stored


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"d": value}
    return value


def test_deep_json_is_refused_clearly(any_db, inline):
    calls: list[int] = []
    name = unique("deep")
    flow = Workflow(name)

    @flow.step(start=True, retry=FAST)
    def call(ctx):
        return Done(ctx.effect("deep", lambda: calls.append(1) or [_nested(10_000)]))

    for deep in (_nested(10_000), _nested(300)):
        with pytest.raises(InvalidInput, match="the run input is nested more than 200 levels"):
            start_run(name, {"x": deep})
    with pytest.raises(InvalidInput, match="nested more than 200 levels"):
        start_run(name, '{"x": ' + "[" * 10_000 + "]" * 10_000 + "}")

    rid = start_run(name, {})
    inline.drain()
    run = get_run(rid)
    assert run.status == "failed" and calls == [1]  # permanent: not called again
    assert "the result of effect 'deep' is nested more than 200 levels deep" in run.error
    assert "RecursionError" not in run.error


# -- agents: LLM replies and tool results ----------------------------------------------------

raw_reads: list[str] = []


@tool
def read_raw(path: str) -> dict[str, Any]:
    """Read a file's raw bytes as text.

    Args:
        path: the file.
    """
    raw_reads.append(path)
    return {"path": path, "text": "head\x00tail", "odd": "\udfff", "api_key": "plain-key-2"}


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLMServer]:
    raw_reads.clear()
    with scripted_llm(monkeypatch) as server:
        yield server


def test_llm_replies_and_tool_results_with_nul_are_journaled_once(any_db, inline, llm, arm):
    # Each journaled call is followed by a crash before the step's commit: the retry must find
    # the result in the journal (on PostgreSQL too) instead of calling again.
    arm("after_llm_response_before_persist@reason=raise,after_effect_call_before_commit@act=raise")
    llm.set_script(
        {
            "turns": [
                {"tool_calls": [{"name": "read_raw", "arguments": {"path": "/tmp/a\x00b"}}]},
                {"content": "the file says head\x00tail"},
            ]
        }
    )
    agent = Agent(agent_name("raw"), "Read files.", [read_raw], retry=FAST, tool_retry=FAST)
    rid = start_run(agent.name, {"message": "What is in /tmp/a?"})

    run = settle(inline, rid)

    assert run.status == "succeeded", run.error
    assert run.result["answer"] == "the file says head\x00tail"
    assert raw_reads == ["/tmp/a\x00b"]
    assert llm.stats(rid)["by_turn"]["0"] == {"calls": 1, "failed_calls": 0}  # paid once
    rows = _journal(rid)  # name: (status, calls, result)
    tool_name = next(name for name in rows if name.startswith("tool:"))
    expected = {"path": "/tmp/a\x00b", "text": "head\x00tail", "odd": "\udfff", "api_key": MASK}
    assert rows[tool_name] == ("done", 1, expected)
    assert rows["llm:1"][2]["content"] == "the file says head\x00tail"
    assert all(status == "done" and calls == 1 for status, calls, _ in rows.values())
    content = tool_messages(rid)[0]  # JSON text, sent to the model as UTF-8
    assert json.loads(content) == expected
    assert "plain-key-2" not in content
    assert verify_audit(rid).ok


@pytest.mark.parametrize("bad", ["ali\x00ce", "\ud800", "", " " * 3, "x" * 201])
def test_names_bound_for_text_columns_are_refused_clearly(any_db, inline, bad):
    from pipeline import cancel_run

    name = unique("names")
    flow = Workflow(name)

    @flow.step(start=True)
    def park(ctx):
        return WaitForEvent("go", then="park")

    rid = start_run(name, {})
    inline.drain()
    before = [e.kind for e in run_history(rid)]
    with pytest.raises(InvalidInput, match="NUL or unpaired surrogates"):
        send_event(rid, bad, {})
    with pytest.raises(InvalidInput, match="actor"):
        cancel_run(rid, bad)
    assert [e.kind for e in run_history(rid)] == before and get_run(rid).status == "waiting"
    cancel_run(rid, "ops", "reason with \x00 NUL")  # free text is made storable instead
    assert "\\0" in get_run(rid).error
