"""Bad input is a clear error that changes nothing (B18, B27); bad step results fail the run
clearly and at once; idempotent starts; workflow version mismatch (F31)."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import func, select

from models import Run
from pipeline import (
    Done,
    InvalidInput,
    Next,
    RetryPolicy,
    RunNotFound,
    WaitForApproval,
    Workflow,
    WorkflowNotFound,
    approve,
    cancel_run,
    get_run,
    reject,
    retry_run,
    run_history,
    run_steps,
    send_event,
    start_run,
    verify_audit,
)
from pipeline.store import get_db
from tests.integration._engine_support import kinds, unique


def _run_count() -> int:
    with get_db().engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Run.__table__)).scalar_one()


def _simple_flow() -> str:
    name = unique("inputs")
    flow = Workflow(name)

    @flow.step(start=True)
    def only(ctx):
        return Done(ctx.state)

    return name


def test_unknown_workflow_is_refused(any_db, inline):
    _simple_flow()  # registered, so the message can list it
    with pytest.raises(WorkflowNotFound, match="no_such_flow"):
        start_run("no_such_flow", {})
    with pytest.raises(WorkflowNotFound):
        start_run(None, {})  # type: ignore[arg-type]
    assert _run_count() == 0 and not inline.queue


BAD_INPUTS = {
    "text": "this is not json",
    "json-array": "[1, 2]",
    "json-nan": '{"x": NaN}',
    "list": [1, 2],
    "set": {1, 2},
    "nan": {"x": float("nan")},
    "inf": {"x": float("inf")},
    "object": {"x": object()},
    "huge": {"blob": "x" * 70_000},
    "int": 42,
    "none": None,
}


def test_input_that_is_not_a_json_object_is_refused(any_db, inline):
    name = _simple_flow()
    for what, bad in BAD_INPUTS.items():
        with pytest.raises(InvalidInput):
            start_run(name, bad)
            pytest.fail(f"accepted {what}")
    assert _run_count() == 0 and not inline.queue


def test_input_as_json_text_is_accepted(any_db, inline):
    rid = start_run(_simple_flow(), '{"order": 7}')
    inline.drain()
    assert get_run(rid).result == {"order": 7}


def test_bad_idempotency_key_is_refused(any_db, inline):
    name = _simple_flow()
    for key in ("", "k" * 256, 12):
        with pytest.raises(InvalidInput):
            start_run(name, {}, idempotency_key=key)
    assert _run_count() == 0


BAD_IDS = [
    "nope",
    "'; DROP TABLE ravel_runs; --",
    "x" * 10_000,
    "../../etc/passwd",
    "",
    42,
    None,
    str(uuid.uuid4()),
]


def test_bad_or_unknown_run_id_is_run_not_found_everywhere(any_db, inline):
    rid = start_run(_simple_flow(), {})
    inline.drain()
    before = (get_run(rid), kinds(rid))
    calls = [
        lambda run_id: get_run(run_id),
        lambda run_id: approve(run_id, "alice"),
        lambda run_id: reject(run_id, "alice"),
        lambda run_id: send_event(run_id, "x"),
        lambda run_id: retry_run(run_id, "ops"),
        lambda run_id: cancel_run(run_id, "ops"),
        lambda run_id: run_history(run_id),
        lambda run_id: run_steps(run_id),
        lambda run_id: verify_audit(run_id),
    ]
    for run_id in BAD_IDS:
        for n, call in enumerate(calls):
            with pytest.raises(RunNotFound) as info:
                call(run_id)
                pytest.fail(f"call {n} accepted {str(run_id)[:20]!r}")
            assert len(str(info.value)) < 300  # bounded, whatever the id's size
    assert (get_run(rid), kinds(rid)) == before
    assert _run_count() == 1


def test_run_ids_are_normalised(any_db, inline):
    rid = start_run(_simple_flow(), {})
    assert get_run(rid.upper()).id == rid
    assert get_run(uuid.UUID(rid)).id == rid


def test_step_returning_a_non_transition_fails_at_once(any_db, inline):
    for returned in (42, None, "Done", {"next": "x"}, Done):
        calls: list[int] = []
        name = unique("non_transition")
        flow = Workflow(name)

        @flow.step(start=True, retry=RetryPolicy(max_attempts=5, initial_delay=0.01))
        def sloppy(ctx, returned=returned, calls=calls):
            calls.append(ctx.attempt)
            return returned

        rid = start_run(name, {})
        inline.drain()
        run = get_run(rid)
        assert run.status == "failed", returned
        assert "'sloppy'" in run.error and "not a transition" in run.error
        assert calls == [1]  # a programming error is not retried
        assert [(s.attempt, s.status) for s in run_steps(rid)] == [(1, "failed")]
        assert "step.retry_scheduled" not in kinds(rid)


def _failing_flow(transition) -> str:
    name = unique("bad_transition")
    flow = Workflow(name)

    @flow.step(start=True, retry=RetryPolicy(max_attempts=5, initial_delay=0.01))
    def go(ctx):
        return transition(ctx)

    @flow.step
    def other(ctx):
        return Done()

    return name


def _fails_clearly(inline, name: str, *needles: str, **state) -> str:
    rid = start_run(name, state)
    inline.drain()
    run = get_run(rid)
    assert run.status == "failed", run
    for needle in needles:
        assert needle in run.error, run.error
    assert len(run_steps(rid)) == 1
    return rid


def test_next_naming_an_unknown_step_fails_clearly(any_db, inline):
    name = _failing_flow(lambda ctx: Next("nowhere"))
    rid = _fails_clearly(inline, name, "'nowhere'", name, "go, other")
    assert "Next" in get_run(rid).error


def test_wait_without_approvers_fails_clearly(any_db, inline):
    name = _failing_flow(lambda ctx: WaitForApproval("ok?", approvers=[], then="other"))
    _fails_clearly(inline, name, "approvers")


def test_wait_then_unknown_step_fails_clearly(any_db, inline):
    name = _failing_flow(lambda ctx: WaitForApproval("ok?", approvers=["a"], then="gone"))
    _fails_clearly(inline, name, "'gone'")


def test_non_json_result_fails_clearly(any_db, inline):
    name = _failing_flow(lambda ctx: Done({"when": object()}))
    _fails_clearly(inline, name, "Done result", "not JSON")


def test_non_json_state_fails_clearly_and_keeps_the_old_state(any_db, inline):
    def go(ctx):
        ctx.state["bad"] = {1, 2}
        return Next("other")

    name = _failing_flow(go)
    rid = _fails_clearly(inline, name, "ctx.state", keep=1)
    assert get_run(rid).state == {"keep": 1}


def test_same_idempotency_key_returns_the_same_run(any_db, inline):
    name = _simple_flow()
    first = start_run(name, {"a": 1}, idempotency_key="order-42")
    second = start_run(name, {"a": 2}, idempotency_key="order-42")
    assert first == second
    assert _run_count() == 1
    assert [w.run_id for w in inline.queue] == [first]  # started (published) once
    assert get_run(first).input == {"a": 1}
    other = start_run(name, {"a": 1}, idempotency_key="order-43")
    assert other != first


def test_concurrent_starts_with_one_idempotency_key_make_one_run(pg_db, inline):
    name = _simple_flow()
    start_run(name, {})  # registers the workflow before the race
    barrier = threading.Barrier(6)
    ids: list[str] = []
    errors: list[Exception] = []

    def start() -> None:
        barrier.wait()
        try:
            ids.append(start_run(name, {"n": 1}, idempotency_key="same-key"))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)

    assert errors == [] and len(ids) == 6
    assert len(set(ids)) == 1
    assert _run_count() == 2
    assert kinds(ids[0]) == ["run.started"]


def test_bad_decision_and_event_arguments_change_nothing(any_db, inline):
    name = unique("bad_args")
    flow = Workflow(name)

    @flow.step(start=True)
    def ask(ctx):
        return WaitForApproval("ok?", approvers=["alice"], then="done")

    @flow.step
    def done(ctx):
        return Done(ctx.wait_result.decision)

    rid = start_run(name, {})
    inline.drain()
    before = (get_run(rid), kinds(rid))
    bad_calls = [
        lambda: approve(rid, "alice", {"x": {1, 2}}),
        lambda: approve(rid, "alice", {"x": float("nan")}),
        lambda: approve(rid, "alice", wait_id=42),
        lambda: approve(rid, ""),
        lambda: approve(rid, "   "),
        lambda: approve(rid, None),
        lambda: reject(rid, "a" * 201),
        lambda: send_event(rid, "", {}),
        lambda: send_event(rid, "x" * 201, {}),
        lambda: send_event(rid, "paid", object()),
        lambda: retry_run(rid, "ops", state_patch=[1]),
    ]
    for n, call in enumerate(bad_calls):
        with pytest.raises(InvalidInput):
            call()
            pytest.fail(f"bad call {n} was accepted")
    assert (get_run(rid), kinds(rid)) == before
    assert not inline.queue
    approve(rid, "alice")
    inline.drain()
    assert get_run(rid).result == "approved"
