"""The seeded nemesis, short: concurrent agent and workflow runs on three real workers and beat,
private PostgreSQL and broker servers behind proxies, every fault kind, then the checker.

A fixed seed and one drawn at random (printed; replay it with ``RAVEL_NEMESIS_SEED=N`` or
``python -m pipeline.testing.nemesis --seed N``) must pass; workers with a deliberate bug (the
mutants) must make the checker fail, naming the runs. ``make chaos`` runs the long one.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import dispatch, store
from pipeline.settings import reload_settings
from pipeline.testing.nemesis.checker import violated_runs
from pipeline.testing.nemesis.harness import Options, Outcome, run
from pipeline.testing.nemesis.report import render

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.timeout(420)]
FIXED_SEED = 20240607
RUNS, DURATION = 30, 40.0


@pytest.fixture(autouse=True)
def _own_environment() -> Iterator[None]:
    """The harness points this process at its private servers through the environment:
    give the tests after it back the environment (and settings) they had."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    reload_settings()
    store.reset_db()
    dispatch.set_dispatcher(None)


def _report(outcome: Outcome) -> str:
    assert outcome.history is not None
    return render(outcome, outcome.history, outcome.verdicts)


def _random_seed() -> int:
    seed = int(os.environ.get("RAVEL_NEMESIS_SEED") or random.SystemRandom().randrange(1, 10**6))
    print(f"nemesis seed {seed} (replay: RAVEL_NEMESIS_SEED={seed})")
    return seed


@pytest.mark.parametrize(
    ("broker", "seed"),
    [
        ("redis", FIXED_SEED),
        ("redis", None),
        ("amqp", FIXED_SEED),
    ],
    ids=["redis-fixed-seed", "redis-random-seed", "amqp-fixed-seed"],
)
def test_a_short_nemesis_breaks_no_invariant(broker: str, seed: int | None, tmp_path: Path) -> None:
    seed = seed if seed is not None else _random_seed()
    outcome = run(
        Options(seed=seed, runs=RUNS, duration=DURATION, broker=broker, settle=150, out=tmp_path)
    )
    report = _report(outcome)
    assert outcome.ok, f"seed {seed}:\n{report}"
    assert outcome.settled, report
    # Every fault kind was injected, and the driver did what it plans to.
    assert set(outcome.injected) == set(outcome.options.kinds), report
    assert outcome.history is not None
    kinds = {a["kind"] for a in outcome.history.actions if a.get("ok")}
    assert {"start", "approve", "cancel", "send_event"} <= kinds, kinds
    assert all(v.runs for v in outcome.verdicts if v.name != "canaries_nowhere"), report


@pytest.mark.parametrize(
    ("mutant", "caught_by"),
    [
        ("skip_fence", "no_call_after_cancel"),
        ("double_effect", "remote_calls_have_intents"),
    ],
)
def test_the_checker_catches_a_mutant(mutant: str, caught_by: str, tmp_path: Path) -> None:
    """No fault at all: whatever the checker finds, the mutant did. Many runs are cancelled
    mid-step, so a mutant that ignores the fence has calls to make after the cancel."""
    outcome = run(
        Options(
            seed=FIXED_SEED,
            runs=20,
            duration=10,
            settle=45,
            out=tmp_path,
            mutant=mutant,
            kinds=(),
            cancel_share=0.6,
        )
    )
    report = _report(outcome)
    broken = {v.name: v for v in outcome.verdicts if not v.ok}
    assert caught_by in broken, report
    named = {v.run_id for v in broken[caught_by].violations}
    assert named and None not in named, report
    assert f"seed {FIXED_SEED}" in report and all(
        r in report for r in violated_runs(outcome.verdicts)
    ), report
