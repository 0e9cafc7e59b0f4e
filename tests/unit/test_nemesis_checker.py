"""The nemesis checker's invariants on hand-made histories: each holds on a correct history and
names the run when one detail is broken."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.testing.nemesis import checker
from pipeline.testing.nemesis.checks_effects import (
    approvals_are_honoured,
    canaries_nowhere,
    exactly_one_po_per_approved_run,
    llm_calls_within_faults,
    no_call_after_cancel,
    remote_calls_have_intents,
)
from pipeline.testing.nemesis.checks_runs import (
    audit_chain_verifies,
    conversation_without_duplicates,
    events_are_kept,
    events_match_steps,
    no_lost_run,
    one_outcome_per_step,
    runs_stay_on_their_version,
)
from pipeline.testing.nemesis.history import Disruption, History, RunData
from pipeline.testing.nemesis.plan import APPROVER, INTRUDER, RunPlan, canary
from pipeline.testing.nemesis.verdict import Verdict

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """A database timestamp ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def ts(seconds: float) -> float:
    """The Unix time of ``at(seconds)``."""
    return at(seconds).timestamp()


def row(**fields: Any) -> SimpleNamespace:
    return SimpleNamespace(**fields)


def step(
    seq: int, attempt: int, status: str, start: float | None, end: float, name: str = "reason"
) -> SimpleNamespace:
    return row(
        seq=seq,
        attempt=attempt,
        step=name,
        status=status,
        outcome=None,
        worker="w",
        error=None,
        started_at=None if start is None else at(start),
        finished_at=at(end),
    )


def effect(
    name: str,
    *,
    seq: int = 0,
    kind: str = "tool",
    calls: int = 1,
    key: str = "",
    start: float = 1.0,
    end: float | None = 2.0,
) -> SimpleNamespace:
    return row(
        name=name,
        seq=seq,
        kind=kind,
        status="done" if end is not None else "started",
        calls=calls,
        idempotency_key=key or f"key-{name}-{seq}",
        started_at=at(start),
        finished_at=None if end is None else at(end),
    )


def event(kind: str, **data: Any) -> SimpleNamespace:
    return row(kind=kind, actor="w", at=T0, step="s", data=data)


def wait(
    kind: str = "approval",
    decision: str | None = "approved",
    *,
    actor: str = APPROVER,
    tool: str = "submit_po",
    call_id: str = "call_1_0",
    wait_id: str = "w1",
    expires: float | None = None,
    created: float = 4,
) -> SimpleNamespace:
    data = {"tool": tool, "tool_call_id": call_id} if kind == "approval" else None
    return row(
        id=wait_id,
        kind=kind,
        decision=decision,
        actor=actor,
        data=data,
        created_at=at(created),
        decided_at=None if decision is None else at(created + 1),
        expires_at=None if expires is None else at(expires),
    )


def make_run(
    run_id: str = "r1",
    *,
    status: str = "succeeded",
    seq: int = 0,
    kind: str = "agent",
    plan: RunPlan | None = None,
    version: int = 1,
    **parts: Any,
) -> RunData:
    plan = plan or RunPlan(0, f"tag-{run_id}", kind, 0.0)
    run = row(
        id=run_id,
        status=status,
        step="verify",
        seq=seq,
        workflow_version=version,
        created_at=at(0),
        updated_at=at(10),
        wake_at=None,
        state=parts.pop("state", {}),
        result=parts.pop("result", None),
        error=parts.pop("error", None),
    )
    return RunData(run, plan, **parts)


def history(*runs: RunData, **fields: Any) -> History:
    defaults: dict[str, Any] = {
        "plans": {r.plan.tag: r.plan for r in runs if r.plan},
        "actions": [],
        "faults": [],
        "posts": [],
        "gets": [],
        "llm_stats": {},
        "salt": "salt",
        "hang": 20.0,
        "disruptions": [],
    }
    defaults.update(fields)
    return History(runs={r.id: r for r in runs}, **defaults)


def names(verdict: Verdict) -> list[str | None]:
    return [v.run_id for v in verdict.violations]


def post(key: str, ref: str, t0: float, path: str = "/po", applied: bool = True) -> dict[str, Any]:
    return {
        "kind": "post",
        "t": ts(t0) + 0.1,
        "t0": ts(t0),
        "path": path,
        "key": key,
        "ref": ref,
        "applied": applied,
        "status": 200,
    }


# -- runs ----------------------------------------------------------------------------------


def test_no_lost_run() -> None:
    open_plan = RunPlan(1, "tag-open", "flow", 0.0, event="open")
    fine = [
        make_run("done"),
        make_run("open", status="waiting", plan=open_plan, waits=[wait("event", None)]),
    ]
    assert no_lost_run(history(*fine), now=at(100)).ok
    stuck = make_run("stuck", status="pending")
    parked = make_run("parked", status="waiting", waits=[wait(decision=None, expires=30)])
    missing = RunPlan(9, "tag-never", "agent", 0.0)
    found = no_lost_run(history(*fine, stuck, parked, plans={"tag-never": missing}), now=at(100))
    assert names(found) == [None, "stuck", "parked"]
    assert "never expired" in found.violations[2].detail


def test_one_outcome_per_step() -> None:
    good = make_run(
        seq=2,
        steps=[
            step(0, 1, "succeeded", 0, 1),
            step(1, 1, "lost", None, 3),
            step(1, 2, "succeeded", 2, 3),
        ],
    )
    assert one_outcome_per_step(history(good)).ok
    twice = make_run(
        "twice", seq=1, steps=[step(0, 1, "succeeded", 0, 1), step(0, 2, "succeeded", 2, 3)]
    )
    overlap = make_run(
        "overlap", seq=2, steps=[step(0, 1, "succeeded", 0, 2), step(1, 1, "succeeded", 1, 3)]
    )
    assert names(one_outcome_per_step(history(twice, overlap))) == ["twice", "overlap"]


def test_events_match_steps() -> None:
    audit = [
        event("run.started"),
        event("step.started"),
        event("step.succeeded"),
        event("run.succeeded"),
    ]
    good = make_run(steps=[step(0, 1, "succeeded", 0, 1)], audit=audit, seq=1)
    assert events_match_steps(history(good)).ok
    silent = make_run(
        "silent", steps=[step(0, 1, "succeeded", 0, 1)], seq=1, audit=[audit[0], audit[1], audit[3]]
    )
    wrong_end = make_run(
        "end", status="failed", steps=[step(0, 1, "succeeded", 0, 1)], seq=1, audit=audit
    )
    undecided = make_run(
        "wait",
        steps=[step(0, 1, "succeeded", 0, 1)],
        seq=1,
        waits=[wait()],
        audit=[*audit[:3], event("run.waiting"), audit[3]],
    )
    assert names(events_match_steps(history(silent, wrong_end, undecided))) == [
        "silent",
        "end",
        "wait",
    ]


def test_audit_chain_verifies_asks_verify_audit() -> None:
    def verify(run_id: str) -> Any:
        return row(ok=run_id != "bad", events=3, first_bad_idx=2, problem="hash mismatch")

    found = audit_chain_verifies(history(make_run("good"), make_run("bad")), verify)
    assert names(found) == ["bad"] and found.events == 6


def test_conversation_without_duplicates() -> None:
    messages = [
        {"role": "assistant", "tool_calls": [{"id": "c1"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "x"},
    ]
    llm = [effect("llm:0", kind="llm")]
    assert conversation_without_duplicates(history(make_run(messages=messages, effects=llm))).ok
    doubled = make_run("doubled", messages=[*messages, messages[1]], effects=llm)
    unpaid = make_run("unpaid", messages=[messages[0], *messages], effects=llm)
    assert names(conversation_without_duplicates(history(doubled, unpaid))) == ["doubled", "unpaid"]


def test_runs_stay_on_their_version() -> None:
    good = make_run(kind="flow", version=2, result={"ran": [2, 2, 2]})
    mixed = make_run("mixed", kind="flow", version=1, result={"ran": [1, 2, 2]})
    assert names(runs_stay_on_their_version(history(good, mixed))) == ["mixed"]


def test_events_are_kept() -> None:
    plan = RunPlan(0, "tag-r1", "flow", 0.0, event="early")
    sent = [
        {"kind": "send_event", "run": "r1", "tag": "tag-r1", "ok": True, "t0": ts(1), "t": ts(1.1)}
    ]
    good = make_run(
        kind="flow",
        plan=plan,
        waits=[wait("event", "received")],
        result={"payload": {"ref": "tag-r1"}},
    )
    assert events_are_kept(history(good, actions=sent)).ok
    lost = make_run(kind="flow", plan=plan, waits=[wait("event", "expired")])
    assert names(events_are_kept(history(lost, actions=sent))) == ["r1"]


# -- effects -------------------------------------------------------------------------------


def test_exactly_one_po_per_approved_run() -> None:
    tool = effect("tool:call_1_0", key="k1")
    good = make_run(waits=[wait()], effects=[tool])
    replayed = [post("k1", "tag-r1", 3), post("k1", "tag-r1", 4, applied=False)]
    assert exactly_one_po_per_approved_run(history(good, posts=replayed)).ok
    assert names(exactly_one_po_per_approved_run(history(good))) == ["r1"]  # none applied
    assert names(
        exactly_one_po_per_approved_run(
            history(good, posts=[post("k1", "tag-r1", 3), post("k2", "tag-r1", 4)])
        )
    ) == ["r1", "r1"]
    rejected = make_run(waits=[wait(decision="rejected")])
    assert names(
        exactly_one_po_per_approved_run(
            history(rejected, posts=[post("k1", "tag-r1", 3, applied=False)])
        )
    ) == ["r1"]


def test_no_call_after_cancel() -> None:
    cancel = [
        {"kind": "cancel", "run": "r1", "tag": "tag-r1", "ok": True, "t0": ts(4.9), "t": ts(5)}
    ]
    in_flight = effect("tool:call_0_0", key="k1", start=4, end=None)
    run = make_run(status="cancelled", effects=[in_flight])
    # The call in flight when cancel returned reaches the world later: allowed.
    assert no_call_after_cancel(history(run, actions=cancel, posts=[post("k1", "tag-r1", 6)])).ok
    late = effect("tool:call_0_1", key="k2", start=5.2, end=6)
    run = make_run(status="cancelled", effects=[in_flight, late])
    found = no_call_after_cancel(history(run, actions=cancel, posts=[post("k2", "tag-r1", 5.5)]))
    assert names(found) == ["r1", "r1"]
    assert "started 0.200s after" in found.violations[0].detail
    # A read made after the cancel with no intent at all (a call that ignored the fence).
    read = {**post("k3", "tag-r1", 5.4, path="/price"), "kind": "get"}
    found = no_call_after_cancel(
        history(make_run(status="cancelled", effects=[in_flight]), actions=cancel, gets=[read])
    )
    assert names(found) == ["r1"] and "GET /price" in found.violations[0].detail


def test_remote_calls_have_intents() -> None:
    first = effect("tool:call_2_0", seq=6, key="k6", calls=2, end=None)
    resolved = effect("tool:call_2_0", seq=7, key="k7")
    run = make_run(effects=[first, resolved])
    posts = [post(k, "tag-r1", 3, path="/erp") for k in ("k6", "k6", "k6")]
    assert remote_calls_have_intents(history(run, posts=posts)).ok  # 3 posts, 3 starts
    assert names(remote_calls_have_intents(history(run, posts=[*posts, posts[0]]))) == ["r1"]
    assert names(remote_calls_have_intents(history(run, posts=[post("k?", "tag-r1", 3)]))) == ["r1"]


def test_llm_calls_within_faults() -> None:
    llm = effect("llm:0", kind="llm", calls=2, start=1, end=4)
    stats = {"r1": {"by_turn": {"0": {"calls": 2, "failed_calls": 0}}}}
    run = make_run(effects=[llm])
    assert names(llm_calls_within_faults(history(run, llm_stats=stats))) == ["r1"]
    kill = Disruption("worker_kill", ts(2), ts(2.5))
    assert llm_calls_within_faults(history(run, llm_stats=stats, disruptions=[kill])).ok
    errors = {"r1": {"by_turn": {"0": {"calls": 1, "failed_calls": 1}}}}
    assert llm_calls_within_faults(history(run, llm_stats=errors)).ok
    beyond = {"r1": {"by_turn": {"0": {"calls": 3, "failed_calls": 0}}}}
    assert names(
        llm_calls_within_faults(history(run, llm_stats=beyond, disruptions=[kill, kill]))
    ) == ["r1"]


def test_approvals_are_honoured() -> None:
    answer = [{"role": "tool", "tool_call_id": "call_1_0", "content": "REJECTED: no"}]
    good = make_run(waits=[wait(decision="rejected")], messages=answer)
    # Expired, failed, retried by an operator, asked again and approved: the call may go.
    asked_again = make_run(
        "again",
        effects=[effect("tool:call_1_0", start=9, end=10)],
        waits=[
            wait(decision="expired", tool="submit_express_po"),
            wait(wait_id="w2", tool="submit_express_po", created=7),
        ],
    )
    assert approvals_are_honoured(history(good, asked_again)).ok
    called = make_run(
        "called",
        waits=[wait(decision="rejected")],
        messages=answer,
        effects=[effect("tool:call_1_0", start=6)],
    )
    unasked = make_run("unasked", effects=[effect("tool:call_1_0", start=3)], waits=[wait()])
    express = make_run("express", waits=[wait(decision="expired", tool="submit_express_po")])
    stranger = make_run("stranger", waits=[wait(actor=INTRUDER)])
    intrusion = [{"kind": "intrude", "run": "stranger", "tag": "tag-stranger", "ok": True}]
    found = approvals_are_honoured(history(called, unasked, express, stranger, actions=intrusion))
    assert names(found) == ["called", "called", "unasked", "express", "stranger", "stranger"]


def test_canaries_nowhere() -> None:
    plan = RunPlan(0, "tag-r1", "agent", 0.0, flavors=("canary",))
    gets = [{"kind": "get", "ref": "tag-r1", "flavors": ["canary"]}]
    run = make_run(plan=plan)
    assert canaries_nowhere(history(run, gets=gets, database_text="[redacted]")).ok
    leaked = f'{{"api_key": "ck-{canary("salt", "tag-r1", "key")}"}}'
    found = canaries_nowhere(history(run, gets=gets, broker_text=leaked))
    assert names(found) == ["r1"] and "the broker" in found.violations[0].detail


def test_a_crashing_check_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(h: History) -> Verdict:
        raise KeyError("boom")

    monkeypatch.setattr(checker, "INVARIANTS", [broken])
    [verdict] = checker.check(history(make_run()))
    assert not verdict.ok and "KeyError" in verdict.violations[0].detail
