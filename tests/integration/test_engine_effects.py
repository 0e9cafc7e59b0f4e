"""``ctx.effect``: journaled once, replayed on later attempts, nothing recorded on failure."""

from __future__ import annotations

from sqlalchemy import select

from models import Effect
from pipeline import Done, Next, RetryPolicy, Workflow, get_run, run_steps, start_run
from pipeline.store import get_db
from tests.integration._engine_support import reap_until, status, unique

FAST = RetryPolicy(max_attempts=3, initial_delay=0.05, backoff=1.0)


def _journal(run_id: str) -> dict[str, tuple[str, int, object]]:
    with get_db().engine.connect() as conn:
        rows = conn.execute(select(Effect.__table__).where(Effect.__table__.c.run_id == run_id))
        return {r.name: (r.status, r.calls, r.result) for r in rows}


def _run_to_end(inline, run_id: str) -> None:
    inline.drain()
    while not get_run(run_id).status.is_final:
        reap_until(lambda: status(run_id) == "pending")
        inline.drain()


def test_effect_result_is_reused_by_the_next_attempt(any_db, inline):
    calls: list[int] = []
    seen: list[tuple[int, object]] = []
    name = unique("effect_replay")
    flow = Workflow(name)

    def charge(amount: int) -> dict:
        calls.append(amount)
        return {"charged": amount, "n": len(calls)}

    @flow.step(start=True, retry=FAST)
    def pay(ctx):
        result = ctx.effect("charge", charge, ctx.state["amount"])
        seen.append((ctx.attempt, result))
        if ctx.attempt == 1:
            raise RuntimeError("crashed after the effect")
        return Done(result)

    rid = start_run(name, {"amount": 42})
    _run_to_end(inline, rid)

    run = get_run(rid)
    assert run.status == "succeeded"
    assert calls == [42]  # fn ran once, although the step ran twice
    assert seen == [(1, {"charged": 42, "n": 1}), (2, {"charged": 42, "n": 1})]
    assert run.result == {"charged": 42, "n": 1}
    assert _journal(rid) == {"charge": ("done", 1, {"charged": 42, "n": 1})}
    assert [(s.attempt, s.status) for s in run_steps(rid)] == [(1, "failed"), (2, "succeeded")]


def test_effect_that_raises_records_nothing_and_fails_the_attempt(any_db, inline):
    calls: list[int] = []
    name = unique("effect_raise")
    flow = Workflow(name)

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("vendor down")
        return "ok"

    @flow.step(start=True, retry=FAST)
    def call(ctx):
        return Done(ctx.effect("vendor", flaky))

    rid = start_run(name, {})
    inline.drain()

    assert get_run(rid).status == "sleeping"
    steps = run_steps(rid)
    assert [(s.attempt, s.status) for s in steps] == [(1, "failed")]
    assert "ConnectionError: vendor down" in steps[0].error
    # The intent row exists, but no result: the next attempt calls again.
    assert _journal(rid)["vendor"][0] == "started"

    _run_to_end(inline, rid)
    assert get_run(rid).result == "ok"
    assert len(calls) == 2
    assert _journal(rid)["vendor"] == ("done", 2, "ok")


def test_idempotency_key_is_stable_across_attempts_and_distinct_per_name(any_db, inline):
    keys: dict[tuple[str, str, int], dict[str, str]] = {}
    name = unique("effect_keys")
    flow = Workflow(name)

    @flow.step(start=True, retry=FAST)
    def one(ctx):
        keys[ctx.run_id, "one", ctx.attempt] = {
            "a": ctx.idempotency_key("a"),
            "b": ctx.idempotency_key("b"),
        }
        if ctx.attempt == 1:
            raise RuntimeError("again")
        return Next("two")

    @flow.step
    def two(ctx):
        keys[ctx.run_id, "two", ctx.attempt] = {"a": ctx.idempotency_key("a")}
        return Done()

    rid = start_run(name, {})
    other = start_run(name, {})
    _run_to_end(inline, rid)
    _run_to_end(inline, other)

    first, retried = keys[rid, "one", 1], keys[rid, "one", 2]
    assert first == retried  # same run, same step seq, same name: same key on a retry
    assert first["a"] != first["b"]
    assert keys[rid, "two", 1]["a"] != first["a"]  # another step seq
    assert keys[other, "one", 1]["a"] not in (first["a"], keys[rid, "two", 1]["a"])


def test_effects_are_journaled_per_step(any_db, inline):
    calls: list[str] = []
    name = unique("effect_steps")
    flow = Workflow(name)

    @flow.step(start=True)
    def one(ctx):
        ctx.effect("same", calls.append, "one")
        return Next("two")

    @flow.step
    def two(ctx):
        ctx.effect("same", calls.append, "two")
        return Done()

    rid = start_run(name, {})
    inline.drain()
    assert get_run(rid).status == "succeeded"
    assert calls == ["one", "two"]  # one name in two steps is two effects
