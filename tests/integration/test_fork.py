"""Fork and replay (in-process engine, SQLite and PostgreSQL): a new run from the checkpoint
before any step of any run; the steps before it are not run again, its history says where
it came from, and bad requests are refused before anything is written."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from models import Message, Run
from pipeline import (
    Done,
    Fail,
    InvalidInput,
    Next,
    RunNotFound,
    StepContext,
    WaitForApproval,
    Workflow,
    approve,
    fork_run,
    get_run,
    run_history,
    run_steps,
    start_run,
    verify_audit,
)
from pipeline.cli import cli
from pipeline.engine import execute_step
from pipeline.store import get_db
from tests.integration._engine_support import kinds, unique
from tests.support.inline import InlineDispatcher

calls: list[str] = []


def _call(name: str) -> str:
    calls.append(name)
    return f"{name}-result"


def three_steps() -> Workflow:
    """a -> b -> c, each with a journaled effect and a state change."""
    flow = Workflow(unique("fork3"), version=1)

    @flow.step(start=True)
    def a(ctx: StepContext) -> Any:
        ctx.state["a"] = ctx.effect("a", _call, "a")
        return Next("b")

    @flow.step
    def b(ctx: StepContext) -> Any:
        ctx.state["b"] = ctx.effect("b", _call, f"b:{ctx.state['vendor']['name']}")
        return Next("c")

    @flow.step
    def c(ctx: StepContext) -> Any:
        ctx.effect("c", _call, "c")
        return Done({"vendor": ctx.state["vendor"]["name"], "b": ctx.state["b"]})

    return flow


def run_count() -> int:
    with get_db().engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Run.__table__)).scalar_one())


@pytest.fixture(autouse=True)
def _clear() -> None:
    calls.clear()


def test_fork_from_a_middle_step_reruns_only_the_steps_from_there(any_db, inline):
    flow = three_steps()
    rid = start_run(flow.name, {"vendor": {"name": "acme", "tier": 1}})
    inline.drain()
    assert get_run(rid).status == "succeeded"
    assert calls == ["a", "b:acme", "c"]
    calls.clear()

    fid = fork_run(rid, 1, "alice", state_patch={"vendor": {"name": "globex", "tier": 2}})
    fork = get_run(fid)
    assert (fork.status, fork.step, fork.seq) == ("pending", "b", 1)
    assert fork.state == {"vendor": {"name": "globex", "tier": 2}, "a": "a-result"}
    assert (fork.forked_from, fork.forked_from_seq) == (rid, 1)
    assert fork.workflow_version == get_run(rid).workflow_version
    inline.drain()

    fork = get_run(fid)
    assert fork.status == "succeeded"
    assert fork.result == {"vendor": "globex", "b": "b:globex-result"}
    assert calls == ["b:globex", "c"], "step a ran again in the fork"
    assert [s.seq for s in run_steps(fid)] == [1, 2]
    history = run_history(fid)
    assert history[0].kind == "run.forked"
    assert history[0].actor == "alice"
    assert history[0].data["from_run"] == rid
    assert history[0].data["from_seq"] == 1
    assert history[0].data["patched_keys"] == ["vendor"]
    told = run_history(rid)[-1]
    assert (told.kind, told.data["run_id"], told.actor) == ("run.forked_to", fid, "alice")
    assert verify_audit(fid).ok and verify_audit(rid).ok
    # The original is untouched.
    assert get_run(rid).result == {"vendor": "acme", "b": "b:acme-result"}


def test_fork_of_a_failed_run_starts_from_the_state_before_the_failed_step(any_db, inline):
    flow = Workflow(unique("forkfail"), version=1)

    @flow.step(start=True)
    def first(ctx: StepContext) -> Any:
        ctx.state["n"] = 1
        return Next("second")

    @flow.step
    def second(ctx: StepContext) -> Any:
        ctx.state["scribbled"] = True  # a Fail keeps this in the run row's state
        if ctx.state.get("limit", 0) < 10:
            return Fail("limit too low")
        return Done({"limit": ctx.state["limit"]})

    rid = start_run(flow.name, {"limit": 1})
    inline.drain()
    assert get_run(rid).status == "failed"
    assert get_run(rid).state.get("scribbled") is True

    fid = fork_run(rid, 1, "bob", state_patch='{"limit": 50}')
    assert get_run(fid).state == {"limit": 50, "n": 1}
    inline.drain()
    assert get_run(fid).result == {"limit": 50}
    assert get_run(rid).status == "failed"


def test_a_step_that_changes_nested_state_leaves_its_checkpoint_as_it_was(any_db, inline):
    flow = Workflow(unique("forknested"), version=1)

    @flow.step(start=True)
    def only(ctx: StepContext) -> Any:
        ctx.state["order"]["lines"].append({"sku": "b"})
        ctx.state["order"]["lines"][0]["qty"] = 99
        if not ctx.state.get("ok"):
            return Fail("not ok")
        return Done(len(ctx.state["order"]["lines"]))

    given = {"order": {"lines": [{"sku": "a", "qty": 1}]}}
    rid = start_run(flow.name, given)
    inline.drain()
    assert get_run(rid).state["order"]["lines"][0]["qty"] == 99  # the run row has the change

    fid = fork_run(rid, 0, "erin", state_patch='{"ok": true}')
    assert get_run(fid).state == {**given, "ok": True}  # the checkpoint does not
    inline.drain()
    assert get_run(fid).result == 2


def approval_flow() -> Workflow:
    flow = Workflow(unique("forkwait"), version=1)

    @flow.step(start=True)
    def propose(ctx: StepContext) -> Any:
        ctx.state["proposal"] = ctx.effect("draft", _call, "draft")
        return WaitForApproval(
            prompt="Buy?", approvers=["group:finance"], timeout=timedelta(days=1), then="submit"
        )

    @flow.step
    def submit(ctx: StepContext) -> Any:
        assert ctx.wait_result is not None
        ctx.effect("submit", _call, "submit")
        return Done({"decision": ctx.wait_result.decision, "by": ctx.wait_result.actor})

    return flow


def test_fork_after_a_decided_wait_keeps_the_decision(any_db, inline):
    flow = approval_flow()
    rid = start_run(flow.name, {})
    inline.drain()
    approve(rid, "carol", groups=["finance"])
    inline.drain()
    assert get_run(rid).status == "succeeded"
    calls.clear()

    fid = fork_run(rid, 1, "dave")
    inline.drain()
    assert get_run(fid).result == {"decision": "approved", "by": "carol"}
    assert calls == ["submit"]


def test_fork_of_a_parked_run_is_refused_before_the_wait_but_works_before_the_step(any_db, inline):
    flow = approval_flow()
    rid = start_run(flow.name, {})
    inline.drain()
    assert get_run(rid).status == "waiting"
    before = run_count()
    with pytest.raises(
        InvalidInput, match=r"parked on approval before step seq 1.*fork from seq 0"
    ):
        fork_run(rid, 1, "dave")
    assert run_count() == before
    calls.clear()

    fid = fork_run(rid, 0, "dave")
    inline.drain()
    fork = get_run(fid)
    assert fork.status == "waiting"
    assert fork.wait is not None and fork.wait.id != get_run(rid).wait.id  # type: ignore[union-attr]
    assert calls == ["draft"], "the fork's own step 0 makes a fresh call"


def test_bad_fork_requests_are_refused_clearly_and_write_nothing(any_db, inline):
    flow = three_steps()
    rid = start_run(flow.name, {"vendor": {"name": "acme", "tier": 1}})
    inline.drain()
    before = run_count()
    events = len(run_history(rid))

    with pytest.raises(RunNotFound):
        fork_run("0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10", 0, "eve")
    with pytest.raises(RunNotFound):
        fork_run("not-a-run", 0, "eve")
    with pytest.raises(InvalidInput, match=r"no step seq 3 .* seq 0 to 2"):
        fork_run(rid, 3, "eve")
    with pytest.raises(InvalidInput, match="from_step must be a step seq"):
        fork_run(rid, -1, "eve")
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        fork_run(rid, 1, "eve", state_patch=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        fork_run(rid, 1, "eve", state_patch='"globex"')
    with pytest.raises(InvalidInput, match=r"'_agent'.*Ravel writes it"):
        fork_run(rid, 1, "eve", state_patch={"_agent": {"turns": 0}})
    with pytest.raises(InvalidInput, match=r'changes state\["vendor"\] from an object to an array'):
        fork_run(rid, 1, "eve", state_patch={"vendor": ["globex"]})
    with pytest.raises(
        InvalidInput, match=r'changes state\["vendor"\]\["tier"\] from a number to a string'
    ):
        fork_run(rid, 1, "eve", state_patch={"vendor": {"name": "globex", "tier": "2"}})
    assert run_count() == before
    assert len(run_history(rid)) == events


def test_fork_while_the_original_runs_does_not_disturb_its_commit(any_db, inline):
    flow = Workflow(unique("forkbusy"), version=1)
    entered, release = threading.Event(), threading.Event()

    @flow.step(start=True)
    def slow(ctx: StepContext) -> Any:
        entered.set()
        assert release.wait(10)
        ctx.state["done"] = True
        return Done({"ok": True})

    rid = start_run(flow.name, {"x": 1})
    wake = inline.queue.pop()
    worker = threading.Thread(
        target=lambda: execute_step(wake.run_id, wake.seq, wake.step, worker="w1")
    )
    worker.start()
    assert entered.wait(10)
    fid = fork_run(rid, 0, "frank")
    release.set()
    worker.join(10)
    # The original's step committed: nothing was appended under its claim.
    assert get_run(rid).status == "succeeded"
    assert verify_audit(rid).ok
    assert "run.forked_to" not in kinds(rid)
    assert get_run(fid).forked_from == rid
    assert get_run(fid).state == {"x": 1}


def test_a_fork_can_be_forked_and_keeps_the_conversation(any_db, inline):
    flow = Workflow(unique("forkmsgs"), version=1)

    @flow.step(start=True)
    def talk(ctx: StepContext) -> Any:
        ctx.add_message({"role": "user", "content": f"turn {len(ctx.messages)}"})
        return Next("talk") if len(ctx.messages) < 3 else Done({"said": len(ctx.messages)})

    rid = start_run(flow.name, {})
    inline.drain()
    assert get_run(rid).result == {"said": 3}
    fid = fork_run(rid, 2, "gina")
    with get_db().engine.connect() as conn:
        copied = conn.execute(
            select(func.count())
            .select_from(Message.__table__)
            .where(Message.__table__.c.run_id == fid)
        ).scalar_one()
    assert copied == 2
    inline.drain()
    assert get_run(fid).result == {"said": 3}
    gid = fork_run(fid, 2, "gina")
    inline.drain()
    assert get_run(gid).result == {"said": 3}
    assert (get_run(gid).forked_from, get_run(gid).forked_from_seq) == (fid, 2)


def test_cli_fork_and_show(any_db, inline: InlineDispatcher):
    flow = three_steps()
    rid = start_run(flow.name, {"vendor": {"name": "acme", "tier": 1}})
    inline.drain()
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "runs",
            "fork",
            rid,
            "--from-step",
            "2",
            "--actor",
            "hana",
            "--patch",
            '{"note": "again"}',
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"forked from run {rid} at step seq 2 (c), by hana" in result.output
    fid = result.output.split()[1]
    assert get_run(fid).state["note"] == "again"
    shown = runner.invoke(cli, ["runs", "show", fid])
    assert f"{rid} at step seq 2" in shown.output
    shown = runner.invoke(cli, ["runs", "show", rid])
    assert f"{fid} (from seq 2)" in shown.output
    refused = runner.invoke(cli, ["runs", "fork", rid, "--from-step", "1", "--patch", "[1]"])
    assert refused.exit_code == 1
    assert "--patch must be a JSON object" in refused.output
    refused = runner.invoke(cli, ["runs", "fork", rid, "--from-step", "9"])
    assert refused.exit_code == 1
    assert "no step seq 9" in refused.output
